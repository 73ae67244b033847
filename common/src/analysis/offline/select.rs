//! Evidence selection of one pass: which passages each section quotes.

/// The quotes of every section of a pass. `eligible[s]` lists, for section `s`, the passages
/// that qualify for it (filters passed, `score >= min_score`) as `(passage index, score)`;
/// `text_id[p]` is the same number for passages with the same text.
///
/// With `exclusive`, a passage goes only to the section where it scores highest (the
/// earlier section on a tie), even if that section then keeps only its best `max_quotes`
/// and leaves it out, and also to every section `s` for which `shared(s, passage)` holds.
/// Each section keeps its `max_quotes[s]` best passages (the earlier passage on a tie), one
/// per text (a sentence the transcript repeats is quoted once), returned in transcript order.
pub(crate) fn assign(
    eligible: &[Vec<(usize, f64)>],
    max_quotes: &[usize],
    exclusive: bool,
    text_id: &[usize],
    shared: &dyn Fn(usize, usize) -> bool,
) -> Vec<Vec<usize>> {
    // passage → (score, section) of its best section.
    let mut best: std::collections::BTreeMap<usize, (f64, usize)> = Default::default();
    if exclusive {
        for (s, candidates) in eligible.iter().enumerate() {
            for &(p, score) in candidates {
                let entry = best.entry(p).or_insert((score, s));
                if score.total_cmp(&entry.0).is_gt() {
                    *entry = (score, s);
                }
            }
        }
    }
    eligible
        .iter()
        .enumerate()
        .map(|(s, candidates)| {
            let mut kept: Vec<(usize, f64)> = candidates
                .iter()
                .copied()
                .filter(|&(p, _)| {
                    !exclusive || best.get(&p).is_some_and(|&(_, owner)| owner == s) || shared(s, p)
                })
                .collect();
            kept.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut texts = std::collections::BTreeSet::new();
            let mut chosen: Vec<usize> = kept
                .into_iter()
                .map(|(p, _)| p)
                .filter(|&p| texts.insert(text_id.get(p).copied().unwrap_or(p)))
                .take(max_quotes.get(s).copied().unwrap_or(0))
                .collect();
            chosen.sort_unstable();
            chosen
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every passage a text of its own.
    fn ids(n: usize) -> Vec<usize> {
        (0..n).collect()
    }

    #[test]
    fn a_passage_goes_to_the_section_where_it_scores_highest() {
        let eligible = vec![
            vec![(0, 0.5), (1, 0.9)],
            vec![(0, 0.6), (1, 0.4), (2, 0.35)],
        ];
        assert_eq!(
            assign(&eligible, &[3, 3], true, &ids(3), &|_, _| false),
            vec![vec![1], vec![0, 2]]
        );
        // Without exclusivity both sections quote every passage they qualify for.
        assert_eq!(
            assign(&eligible, &[3, 3], false, &ids(3), &|_, _| false),
            vec![vec![0, 1], vec![0, 1, 2]]
        );
    }

    #[test]
    fn a_tie_goes_to_the_earlier_section() {
        let eligible = vec![vec![], vec![(4, 0.7)], vec![(4, 0.7)]];
        assert_eq!(
            assign(&eligible, &[3, 3, 3], true, &ids(5), &|_, _| false),
            vec![vec![], vec![4], vec![]]
        );
    }

    #[test]
    fn the_best_passages_are_kept_and_printed_in_transcript_order() {
        let eligible = vec![vec![(1, 0.4), (3, 0.8), (5, 0.6), (7, 0.8), (9, 0.3)]];
        assert_eq!(
            assign(&eligible, &[3], true, &ids(10), &|_, _| false),
            vec![vec![3, 5, 7]]
        );
        // Equal scores: the earlier passage wins the last place.
        assert_eq!(
            assign(&eligible, &[1], true, &ids(10), &|_, _| false),
            vec![vec![3]]
        );
    }

    #[test]
    fn a_passage_lost_to_a_full_section_is_not_offered_to_the_next() {
        let eligible = vec![vec![(0, 0.9), (1, 0.8)], vec![(1, 0.5)]];
        assert_eq!(
            assign(&eligible, &[1, 3], true, &ids(2), &|_, _| false),
            vec![vec![0], vec![]]
        );
    }

    #[test]
    fn a_shared_passage_also_serves_the_sections_it_is_shared_with() {
        let eligible = vec![vec![(0, 0.9), (1, 0.4)], vec![(0, 0.5)], vec![(0, 0.4)]];
        // Passage 0 is best in section 0, and shared with section 2 only.
        let shared = |s: usize, p: usize| s == 2 && p == 0;
        assert_eq!(
            assign(&eligible, &[3, 3, 3], true, &ids(2), &shared),
            vec![vec![0, 1], vec![], vec![0]]
        );
    }

    #[test]
    fn a_repeated_text_is_quoted_once_and_the_next_best_takes_its_place() {
        // Passages 0, 2 and 4 say the same thing.
        let text_id = [0, 1, 0, 3, 0];
        let eligible = vec![vec![(0, 0.8), (1, 0.5), (2, 0.9), (3, 0.4), (4, 0.9)]];
        assert_eq!(
            assign(&eligible, &[3], true, &text_id, &|_, _| false),
            vec![vec![1, 2, 3]]
        );
    }
}
