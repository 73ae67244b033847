//! The retrieval evaluation set (`tests/eval/README.md`, "Retrieval questions"): questions
//! whose answer was said in one turn of a script of `infra/local/speech/dialogues/`, in
//! `tests/eval/questions/<id>.toml`, each with a paraphrase that shares no content word with
//! that turn and the word sets an answer must hold. A search should find the recording and
//! the time span of the turn. Shared by the retrieval benchmark and the `eval` tests (each
//! includes this file as a module).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use common::analysis::offline::stems;
use serde::Deserialize;

/// One question of the set.
#[derive(Debug, Clone)]
pub struct Question {
    /// The script's id (`infra/local/speech/dialogues/<clip>.txt`), the recording's name.
    pub clip: String,
    /// 1-based: the turn of the script (counting its `S1:`/`S2:` lines only) that answers it.
    pub turn: usize,
    /// As a user would ask it.
    pub text: String,
    /// The same question with no content word of the turn (by Snowball stem).
    pub paraphrase: String,
    /// Alternative word sets; an answer states the fact when it holds every word of one set
    /// (compared as Snowball Russian stems, see [`states`]).
    pub answer: Vec<Vec<String>>,
}

/// `tests/eval/questions/<id>.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuestionsFile {
    question: Vec<RawQuestion>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuestion {
    turn: usize,
    text: String,
    paraphrase: String,
    answer: Vec<Vec<String>>,
}

/// A script of `infra/local/speech/dialogues/`: its header and its turns.
#[derive(Debug, Clone)]
pub struct Script {
    pub id: String,
    /// The `# key: value` lines (`title`, `kind`, `lang`, `building`, `city`, `roles`, `gaps`).
    pub header: BTreeMap<String, String>,
    /// (`S1` or `S2`, what was said), in order; the turn `n` of a question is `turns[n - 1]`.
    pub turns: Vec<(String, String)>,
}

impl Script {
    fn get(&self, key: &str) -> &str {
        self.header.get(key).map(String::as_str).unwrap_or("")
    }

    /// `interview` or `audit`.
    pub fn kind(&self) -> &str {
        self.get("kind")
    }

    /// `hotel`, `restaurant`, `spa` or `non-building`.
    pub fn building(&self) -> &str {
        self.get("building")
    }

    pub fn city(&self) -> &str {
        self.get("city")
    }
}

/// Reads `infra/local/speech/dialogues/<clip>.txt` under the repository `root`, as
/// `make_dialogues.py` does: header lines `# key: value`, turn lines `S1: text` or `S2: text`.
pub fn script(root: &Path, clip: &str) -> Result<Script> {
    let path = root.join(format!("infra/local/speech/dialogues/{clip}.txt"));
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let mut header = BTreeMap::new();
    let mut turns = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(h) = line.strip_prefix('#') {
            if let Some((key, value)) = h.split_once(':') {
                header.insert(key.trim().to_owned(), value.trim().to_owned());
            }
        } else if let Some((speaker, said)) = line.split_once(':')
            && matches!(speaker, "S1" | "S2")
            && !said.trim().is_empty()
        {
            turns.push((speaker.to_owned(), said.trim().to_owned()));
        }
    }
    Ok(Script {
        id: clip.to_owned(),
        header,
        turns,
    })
}

/// The turns of a script: (`S1` or `S2`, text).
pub fn turns(root: &Path, clip: &str) -> Result<Vec<(String, String)>> {
    Ok(script(root, clip)?.turns)
}

/// Words that carry no content of their own (question words, auxiliaries, pronouns,
/// prepositions and conjunctions), separated by white space, stemmed when compared; stems
/// shorter than four letters are never content words either.
pub const STOP_WORDS: &str = "\
    что чего чем где куда откуда когда почему зачем сколько какой какая какое какие каких каким \
    какую который которая которое которые кто кого кому был была было были быть есть будет может \
    можно нужно нужна нужен этот эта это эти этом этой этого этих свой своей весь всего всех \
    только очень также тоже именно через после перед между около из-за если хотя однако чтобы \
    потому поэтому там здесь тут";

fn stop_stems() -> BTreeSet<String> {
    stems(STOP_WORDS).into_iter().collect()
}

/// The content words of a text as stems: Snowball stems of four letters or more that are not
/// stems of [`STOP_WORDS`].
pub fn content_stems(text: &str) -> BTreeSet<String> {
    let stop = stop_stems();
    stems(text)
        .into_iter()
        .filter(|s| s.chars().count() >= 4 && !stop.contains(s))
        .collect()
}

/// Whether a text states the answer: its stems hold every word of one of the sets.
pub fn states(answer: &[Vec<String>], text: &str) -> bool {
    let have: BTreeSet<String> = stems(text).into_iter().collect();
    answer.iter().any(|set| set_in(set, &have))
}

fn set_in(set: &[String], have: &BTreeSet<String>) -> bool {
    let words: Vec<String> = set.iter().flat_map(|w| stems(w)).collect();
    !words.is_empty() && words.iter().all(|s| have.contains(s))
}

/// Every question of `tests/eval/questions/*.toml` under the repository `root`, files in
/// name order, questions in file order. Fails, listing every problem by file and question,
/// when a question does not hold to the format (`tests/eval/README.md`).
pub fn load_questions(root: &Path) -> Result<Vec<Question>> {
    let dir = root.join("tests/eval/questions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| dir.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let clip = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file: QuestionsFile = toml::from_str(
            &std::fs::read_to_string(&path).with_context(|| path.display().to_string())?,
        )
        .with_context(|| path.display().to_string())?;
        let script = match script(root, &clip) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!(
                    "{name}: no script infra/local/speech/dialogues/{clip}.txt ({e:#})"
                ));
                continue;
            }
        };
        if file.question.is_empty() {
            problems.push(format!("{name}: no [[question]]"));
        }
        for (i, q) in file.question.into_iter().enumerate() {
            let at = format!("{name}: question {} ({:?})", i + 1, q.text);
            let before = problems.len();
            check(&q, &script, &at, &mut problems);
            if problems.len() == before {
                out.push(Question {
                    clip: clip.clone(),
                    turn: q.turn,
                    text: q.text.trim().to_owned(),
                    paraphrase: q.paraphrase.trim().to_owned(),
                    answer: q.answer,
                });
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "{} problem(s) in tests/eval/questions:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
    Ok(out)
}

fn check(q: &RawQuestion, script: &Script, at: &str, problems: &mut Vec<String>) {
    let (text, paraphrase) = (q.text.trim(), q.paraphrase.trim());
    if text.is_empty() {
        problems.push(format!("{at}: empty text"));
    }
    if paraphrase.is_empty() {
        problems.push(format!("{at}: empty paraphrase"));
    }
    if !text.is_empty() && text.to_lowercase() == paraphrase.to_lowercase() {
        problems.push(format!("{at}: the paraphrase is the text"));
    }
    if q.answer.is_empty() {
        problems.push(format!("{at}: no answer word set"));
    }
    if q.answer
        .iter()
        .any(|set| set.is_empty() || set.iter().any(|w| stems(w).is_empty()))
    {
        problems.push(format!(
            "{at}: an empty answer set or word in {:?}",
            q.answer
        ));
    }
    let n = script.turns.len();
    if q.turn == 0 || q.turn > n {
        problems.push(format!(
            "{at}: turn {} is not one of the script's turns 1..={n}",
            q.turn
        ));
        return;
    }
    let said = &script.turns[q.turn - 1].1;
    let have: BTreeSet<String> = stems(said).into_iter().collect();
    let unsaid: Vec<&Vec<String>> = q.answer.iter().filter(|set| !set_in(set, &have)).collect();
    if unsaid.len() == q.answer.len() && !unsaid.is_empty() {
        problems.push(format!(
            "{at}: no answer set is stated in turn {} ({said:?}): {unsaid:?}",
            q.turn
        ));
    } else if !unsaid.is_empty() {
        problems.push(format!(
            "{at}: answer sets {unsaid:?} are not stated in turn {} ({said:?})",
            q.turn
        ));
    }
    let shared: Vec<String> = content_stems(paraphrase)
        .intersection(&content_stems(said))
        .cloned()
        .collect();
    if !shared.is_empty() {
        problems.push(format!(
            "{at}: the paraphrase {paraphrase:?} shares content stems {shared:?} with turn {}",
            q.turn
        ));
    }
}
