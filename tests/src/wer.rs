//! Word error rate as the speech tests and the speech benchmark score it: one normaliser, one
//! alignment, so a figure in a test and in the benchmark mean the same.

/// Lowercase, `ё` -> `е`, punctuation removed, hyphens split words; for English, as WER is
/// usually scored (Whisper's own English normaliser does the same): numbers written in digits
/// are spelt out ("6,000" -> "six thousand"), "and" inside a spelt number is dropped, and
/// British spellings are written the American way, so "centre" and "center" or "11" and
/// "eleven" are the same words.
pub fn words(text: &str) -> Vec<String> {
    // Thousands separators inside numbers go first: "6,000" is one number.
    let chars: Vec<char> = text.chars().collect();
    let joined: String = chars
        .iter()
        .enumerate()
        .filter(|&(i, &c)| {
            !(c == ','
                && i > 0
                && chars[i - 1].is_ascii_digit()
                && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        })
        .map(|(_, &c)| c)
        .collect();
    let raw: Vec<String> = joined
        .to_lowercase()
        .replace('ё', "е")
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_string())
        .filter(|w| !w.is_empty())
        .collect();
    // The English rules apply to English text only (Russian is scored as it is written).
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    let latin = text.chars().filter(char::is_ascii_alphabetic).count();
    if latin * 2 <= letters {
        return raw;
    }
    let mut out: Vec<String> = Vec::new();
    for w in raw {
        match w.parse::<u64>() {
            Ok(n) if n < 1_000_000_000 => out.extend(spell(n)),
            _ => out.push(american(&w).to_owned()),
        }
    }
    // "one hundred and twenty": "and" between two number words is not a word of its own.
    let number = is_number_word;
    (0..out.len())
        .filter(|&i| {
            !(out[i] == "and"
                && i > 0
                && number(&out[i - 1])
                && out.get(i + 1).is_some_and(|n| number(n)))
        })
        .map(|i| out[i].clone())
        .collect()
}

const UNITS: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// A word of a spelt-out number.
fn is_number_word(w: &str) -> bool {
    UNITS.contains(&w)
        || (!w.is_empty() && TENS.contains(&w))
        || matches!(w, "hundred" | "thousand" | "million")
}

/// `n` in English words, without "and" (`120000` -> one hundred twenty thousand).
pub fn spell(n: u64) -> Vec<String> {
    fn below_thousand(n: u64, out: &mut Vec<String>) {
        if n >= 100 {
            out.push(UNITS[(n / 100) as usize].into());
            out.push("hundred".into());
        }
        let rest = n % 100;
        if rest >= 20 {
            out.push(TENS[(rest / 10) as usize].into());
            if !rest.is_multiple_of(10) {
                out.push(UNITS[(rest % 10) as usize].into());
            }
        } else if rest > 0 || n == 0 {
            out.push(UNITS[rest as usize].into());
        }
    }
    let mut out = Vec::new();
    let (millions, thousands, rest) = (n / 1_000_000, n / 1_000 % 1_000, n % 1_000);
    if millions > 0 {
        below_thousand(millions, &mut out);
        out.push("million".into());
    }
    if thousands > 0 {
        below_thousand(thousands, &mut out);
        out.push("thousand".into());
    }
    if rest > 0 || out.is_empty() {
        below_thousand(rest, &mut out);
    }
    out
}

/// The American spelling of the British words these clips use.
fn american(word: &str) -> &str {
    match word {
        "centre" => "center",
        "colour" => "color",
        "favourite" => "favorite",
        "metre" => "meter",
        "theatre" => "theater",
        "organise" => "organize",
        "realise" => "realize",
        other => other,
    }
}

/// Word-level edit distance.
pub fn edit_distance(a: &[String], b: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j + 1] + 1)
                .min(cur[j] + 1)
                .min(prev[j] + usize::from(x != y));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Word error rate of `hypothesis` against `reference` (edit distance over reference words).
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let r = words(reference);
    edit_distance(&r, &words(hypothesis)) as f64 / r.len().max(1) as f64
}

/// Which reference words an optimal alignment matches exactly: `true` at index i when
/// `reference[i]` is aligned to an equal hypothesis word.
pub fn matched(reference: &[String], hypothesis: &[String]) -> Vec<bool> {
    let (n, m) = (reference.len(), hypothesis.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let sub = d[i - 1][j - 1] + usize::from(reference[i - 1] != hypothesis[j - 1]);
            d[i][j] = sub.min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
        }
    }
    let mut hit = vec![false; n];
    let (mut i, mut j) = (n, m);
    while i > 0 && j > 0 {
        let same = reference[i - 1] == hypothesis[j - 1];
        if d[i][j] == d[i - 1][j - 1] + usize::from(!same) {
            hit[i - 1] = same;
            i -= 1;
            j -= 1;
        } else if d[i][j] == d[i - 1][j] + 1 {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    hit
}

/// For each part of the reference (sentences, turns), the share of its words the hypothesis
/// holds, aligned over the whole text.
pub fn recall_by_part(parts: &[&str], hypothesis: &str) -> Vec<f64> {
    let part_words: Vec<Vec<String>> = parts.iter().map(|p| words(p)).collect();
    let all: Vec<String> = part_words.iter().flatten().cloned().collect();
    let hit = matched(&all, &words(hypothesis));
    let mut at = 0;
    part_words
        .iter()
        .map(|w| {
            let got = hit[at..at + w.len()].iter().filter(|&&h| h).count();
            at += w.len();
            got as f64 / w.len().max(1) as f64
        })
        .collect()
}

/// The sentences of a text: split after `.`, `?` or `!`.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, '.' | '?' | '!') {
            let end = i + c.len_utf8();
            let s = text[start..end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = end;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wer_normalisation_spells_numbers_and_spellings_alike() {
        assert_eq!(
            words("about 6,000 roubles"),
            words("about six thousand roubles")
        );
        assert_eq!(
            words("We paid around 120,000"),
            words("we paid around one hundred and twenty thousand")
        );
        assert_eq!(words("until 11."), words("until eleven"));
        assert_eq!(words("close to the centre"), words("Close to the center"));
        assert_eq!(words("bread and butter"), ["bread", "and", "butter"]);
        assert_eq!(spell(0), ["zero"]);
        assert_eq!(
            spell(1_024_015),
            ["one", "million", "twenty", "four", "thousand", "fifteen"]
        );
    }

    #[test]
    fn parts_are_scored_by_the_words_an_alignment_matches() {
        let parts = ["Номер был чистым.", "Завтрак понравился всем гостям."];
        let recall = recall_by_part(&parts, "номер был чистый завтрак всем гостям");
        assert_eq!(recall, vec![2.0 / 3.0, 0.75]);
        assert_eq!(recall_by_part(&parts, ""), vec![0.0, 0.0]);
        assert_eq!(
            sentences("Раз. Два? Три! четыре"),
            ["Раз.", "Два?", "Три!", "четыре"]
        );
        assert!((wer("а б в г", "а б г") - 0.25).abs() < 1e-12);
    }
}
