//! Diarization error rate and role accuracy against known turns, for the speaker benchmark
//! and the speech tests.
//!
//! DER as NIST scores it, on a 10 ms grid: (missed speech + false alarm + speaker confusion)
//! / reference speech, with the hypothesis speakers mapped one-to-one onto the reference
//! speakers so that the overlap is largest, and a collar around every reference turn
//! boundary left out of the count (0.25 s is the usual one). Turns of one reference never
//! overlap here (the dialogues are synthesized turn after turn).

/// A stretch said by one speaker: (start ms, end ms, speaker).
pub type Span<S> = (i64, i64, S);

const FRAME_MS: i64 = 10;

/// The parts of a DER, in frames of 10 ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DerCounts {
    pub reference: u64,
    pub missed: u64,
    pub false_alarm: u64,
    pub confusion: u64,
}

impl DerCounts {
    pub fn der(&self) -> f64 {
        (self.missed + self.false_alarm + self.confusion) as f64 / self.reference.max(1) as f64
    }

    /// Confusion alone: speech given to the wrong speaker.
    pub fn confusion_rate(&self) -> f64 {
        self.confusion as f64 / self.reference.max(1) as f64
    }

    pub fn add(&mut self, o: &DerCounts) {
        self.reference += o.reference;
        self.missed += o.missed;
        self.false_alarm += o.false_alarm;
        self.confusion += o.confusion;
    }
}

/// Scores `hypothesis` (speaker ids) against `reference` (speaker names), `collar_ms` either
/// side of each reference boundary not counted.
pub fn der<R: PartialEq + Clone>(
    reference: &[Span<R>],
    hypothesis: &[Span<i16>],
    collar_ms: i64,
) -> DerCounts {
    let end = reference
        .iter()
        .map(|s| s.1)
        .chain(hypothesis.iter().map(|s| s.1))
        .max()
        .unwrap_or(0);
    let frames = (end / FRAME_MS + 1) as usize;
    let mut names: Vec<R> = Vec::new();
    let mut reference_at: Vec<Option<usize>> = vec![None; frames];
    let mut scored = vec![true; frames];
    for (a, b, who) in reference {
        let k = match names.iter().position(|n| n == who) {
            Some(k) => k,
            None => {
                names.push(who.clone());
                names.len() - 1
            }
        };
        fill(&mut reference_at, frame(*a), frame(*b), Some(k));
        for edge in [*a, *b] {
            fill(
                &mut scored,
                frame(edge - collar_ms),
                frame(edge + collar_ms),
                false,
            );
        }
    }
    let mut hypothesis_at: Vec<Option<i16>> = vec![None; frames];
    for (a, b, who) in hypothesis {
        fill(&mut hypothesis_at, frame(*a), frame(*b), Some(*who));
    }
    // Overlap of every hypothesis speaker with every reference speaker.
    let mut hyp_ids: Vec<i16> = hypothesis.iter().map(|s| s.2).collect();
    hyp_ids.sort_unstable();
    hyp_ids.dedup();
    let mut overlap = vec![vec![0u64; names.len()]; hyp_ids.len()];
    for f in (0..frames).filter(|&f| scored[f]) {
        if let (Some(r), Some(h)) = (reference_at[f], hypothesis_at[f]) {
            let hi = hyp_ids.binary_search(&h).unwrap_or(0);
            overlap[hi][r] += 1;
        }
    }
    let mapping = best_mapping(&overlap, names.len());
    let mut c = DerCounts::default();
    for f in (0..frames).filter(|&f| scored[f]) {
        match (reference_at[f], hypothesis_at[f]) {
            (Some(r), Some(h)) => {
                c.reference += 1;
                let hi = hyp_ids.binary_search(&h).unwrap_or(0);
                if mapping[hi] != Some(r) {
                    c.confusion += 1;
                }
            }
            (Some(_), None) => {
                c.reference += 1;
                c.missed += 1;
            }
            (None, Some(_)) => c.false_alarm += 1,
            (None, None) => {}
        }
    }
    c
}

/// Sets `v[from..to]` (clipped to `v`) to `value`.
fn fill<T: Clone>(v: &mut [T], from: usize, to: usize, value: T) {
    let to = to.min(v.len());
    if from < to {
        v[from..to].fill(value);
    }
}

fn frame(ms: i64) -> usize {
    (ms.max(0) / FRAME_MS) as usize
}

/// The one-to-one mapping of hypothesis speakers onto reference speakers with the largest
/// total overlap (exhaustive: a handful of speakers each side).
fn best_mapping(overlap: &[Vec<u64>], n_ref: usize) -> Vec<Option<usize>> {
    fn go(
        i: usize,
        overlap: &[Vec<u64>],
        used: &mut Vec<bool>,
        current: &mut Vec<Option<usize>>,
        best: &mut (u64, Vec<Option<usize>>),
        score: u64,
    ) {
        if i == overlap.len() {
            if score > best.0 || best.1.is_empty() {
                *best = (score, current.clone());
            }
            return;
        }
        current.push(None);
        go(i + 1, overlap, used, current, best, score);
        current.pop();
        for r in 0..used.len() {
            if !used[r] {
                used[r] = true;
                current.push(Some(r));
                go(i + 1, overlap, used, current, best, score + overlap[i][r]);
                current.pop();
                used[r] = false;
            }
        }
    }
    let mut best = (0, Vec::new());
    go(
        0,
        overlap,
        &mut vec![false; n_ref],
        &mut Vec::new(),
        &mut best,
        0,
    );
    if best.1.is_empty() {
        vec![None; overlap.len()]
    } else {
        best.1
    }
}

/// Of the reference turns, how many got their role right: a turn's role is the one its
/// overlapping hypothesis segments give for most of its duration (none: wrong).
pub fn role_accuracy(
    reference: &[Span<String>],
    hypothesis: &[Span<Option<String>>],
) -> (usize, usize) {
    let mut right = 0;
    for (a, b, role) in reference {
        let mut by_role: Vec<(&str, i64)> = Vec::new();
        for (s, e, r) in hypothesis {
            let Some(r) = r else { continue };
            let o = (*e).min(*b) - (*s).max(*a);
            if o <= 0 {
                continue;
            }
            match by_role.iter_mut().find(|(k, _)| *k == r) {
                Some((_, v)) => *v += o,
                None => by_role.push((r, o)),
            }
        }
        let top = by_role.iter().max_by_key(|(_, v)| *v).map(|(k, _)| *k);
        right += usize::from(top == Some(role.as_str()));
    }
    (right, reference.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_hypothesis_with_other_names_scores_zero() {
        let reference = [(0, 2000, "S1"), (2500, 6000, "S2"), (6500, 8000, "S1")];
        let hypothesis = [(0, 2000, 1), (2500, 6000, 0), (6500, 8000, 1)];
        let c = der(&reference, &hypothesis, 0);
        assert_eq!(c.der(), 0.0);
        assert_eq!(c.reference, 200 + 350 + 150);
    }

    #[test]
    fn one_speaker_for_everything_confuses_the_shorter_one() {
        let reference = [(0, 2000, "S1"), (2000, 6000, "S2")];
        let hypothesis = [(0, 6000, 0)];
        let c = der(&reference, &hypothesis, 0);
        assert_eq!(c.confusion, 200);
        assert!((c.der() - 200.0 / 600.0).abs() < 1e-9);
    }

    #[test]
    fn misses_false_alarms_and_the_collar() {
        let reference = [(1000, 3000, "S1")];
        let hypothesis = [(2000, 4000, 0)];
        let c = der(&reference, &hypothesis, 0);
        assert_eq!((c.missed, c.false_alarm, c.confusion), (100, 100, 0));
        // A 0.5 s collar takes 0.5-1.5 s and 2.5-3.5 s out of the count.
        let c = der(&reference, &hypothesis, 500);
        assert_eq!((c.reference, c.missed, c.false_alarm), (100, 50, 50));
    }

    #[test]
    fn roles_are_right_where_most_of_a_turn_has_them() {
        let reference = vec![
            (0, 2000, "Сотрудник".to_string()),
            (2000, 6000, "Клиент".to_string()),
        ];
        let hypothesis = vec![
            (0, 1900, Some("Сотрудник".to_string())),
            (1900, 2600, Some("Клиент".to_string())),
            (2600, 6000, Some("Сотрудник".to_string())),
        ];
        assert_eq!(role_accuracy(&reference, &hypothesis), (1, 2));
        assert_eq!(role_accuracy(&reference, &[]), (0, 2));
    }
}
