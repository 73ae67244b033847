//! The metrics pass of the offline engine: `[[metrics_rule]]` applied to what the narrative
//! passes found, laid out as the pair's JSON Schema (every key present; `null` where a rule
//! gives no value).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::Outcome;
use super::spec::{AggregateOf, AggregateOp, MetricsRule, Pass, PassBody, SectionRule, Source};

/// `num / den` rounded to an integer, halves away from zero (`den > 0`). Exact: no floating
/// point, so 12.5 is always 13.
pub(crate) fn round_ratio(num: i64, den: i64) -> i64 {
    debug_assert!(den > 0);
    let den = den.max(1);
    if num >= 0 {
        (2 * num + den) / (2 * den)
    } else {
        -((-2 * num + den) / (2 * den))
    }
}

/// The dotted paths of a schema's leaves (properties without own properties), in schema order.
pub(crate) fn leaves(schema: &Value) -> Vec<String> {
    fn walk(schema: &Value, prefix: &str, out: &mut Vec<String>) {
        match schema.get("properties").and_then(Value::as_object) {
            Some(props) => {
                for (k, sub) in props {
                    walk(sub, &join(prefix, k), out);
                }
            }
            None if !prefix.is_empty() => out.push(prefix.to_owned()),
            None => {}
        }
    }
    let mut out = Vec::new();
    walk(schema, "", &mut out);
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The object path of a dotted key (`a.b` → `a`; a top-level key → ``).
pub(crate) fn parent_of(key: &str) -> &str {
    key.rsplit_once('.').map_or("", |(parent, _)| parent)
}

/// The metrics object of a pair: `outcomes[i]` are the section outcomes of `passes[i]`
/// (empty for the metrics pass).
pub(crate) fn compute(
    rule: &MetricsRule,
    passes: &[Pass],
    outcomes: &[Vec<Outcome>],
    schema: &Value,
) -> Value {
    let mut values: BTreeMap<String, Option<i64>> = BTreeMap::new();
    // Each key fed by sections, with the outcomes of those sections.
    let mut fed: BTreeMap<String, Vec<&Outcome>> = BTreeMap::new();
    for from in &rule.from_sections {
        let mut by_key: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
        for (pass, outs) in passes.iter().zip(outcomes) {
            if from.pass.is_some_and(|n| n != pass.number) {
                continue;
            }
            let PassBody::Narrative(report) = &pass.body else {
                continue;
            };
            for (section, out) in report.sections.iter().zip(outs) {
                if let Some(key) = &section.metric {
                    // Complement keys count listed titles; other rules count searched sections.
                    let complement = matches!(section.source, Source::Complement { .. });
                    if complement == (from.rule == SectionRule::CountComplement) {
                        by_key.entry(key).or_default().push(out);
                    }
                }
            }
        }
        for (key, outs) in by_key {
            let found = outs.iter().filter(|o| !o.passages.is_empty()).count() as i64;
            let value = match from.rule {
                SectionRule::Coverage => round_ratio(100 * found, outs.len() as i64),
                SectionRule::CountSections => found,
                SectionRule::CountComplement => outs.iter().map(|o| o.listed.len() as i64).sum(),
                SectionRule::CountPassages => {
                    let distinct: BTreeSet<usize> = outs
                        .iter()
                        .flat_map(|o| o.passages.iter().copied())
                        .collect();
                    let n = distinct.len() as i64;
                    from.cap.map_or(n, |cap| n.min(cap))
                }
            };
            values.insert(key.to_owned(), Some(value));
            fed.entry(key.to_owned()).or_default().extend(outs);
        }
    }
    let all_leaves = leaves(schema);
    for agg in &rule.aggregate {
        let of: Vec<&str> = match agg.of {
            AggregateOf::Siblings => all_leaves
                .iter()
                .filter(|k| *k != &agg.key && parent_of(k) == parent_of(&agg.key))
                .map(String::as_str)
                .collect(),
            AggregateOf::SectionKeys => fed
                .keys()
                .filter(|k| *k != &agg.key)
                .map(String::as_str)
                .collect(),
        };
        let present: Vec<i64> = of
            .iter()
            .filter_map(|k| values.get(*k).copied().flatten())
            .collect();
        let value = match agg.op {
            AggregateOp::Sum => (!present.is_empty()).then(|| present.iter().sum()),
            AggregateOp::Mean => (!present.is_empty())
                .then(|| round_ratio(present.iter().sum(), present.len() as i64)),
            AggregateOp::Coverage => {
                let min = agg.min_quotes.unwrap_or(1);
                let outs: Vec<&Outcome> = of
                    .iter()
                    .filter_map(|k| fed.get(*k))
                    .flatten()
                    .copied()
                    .collect();
                let deep = outs.iter().filter(|o| o.passages.len() >= min).count() as i64;
                (!outs.is_empty()).then(|| round_ratio(100 * deep, outs.len() as i64))
            }
        };
        values.insert(agg.key.clone(), value);
    }
    build(schema, "", &values)
}

fn build(schema: &Value, path: &str, values: &BTreeMap<String, Option<i64>>) -> Value {
    match schema.get("properties").and_then(Value::as_object) {
        Some(props) => Value::Object(
            props
                .iter()
                .map(|(k, sub)| (k.clone(), build(sub, &join(path, k), values)))
                .collect::<Map<String, Value>>(),
        ),
        None => values
            .get(path)
            .copied()
            .flatten()
            .map_or(Value::Null, Value::from),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::spec::{
        Aggregate, FromSections, RenderEmpty, Report, Search, Section, Source,
    };
    use super::*;

    #[test]
    fn ratios_round_half_away_from_zero() {
        assert_eq!(round_ratio(100, 8), 13); // 12.5
        assert_eq!(round_ratio(500, 8), 63); // 62.5
        assert_eq!(round_ratio(100, 3), 33); // 33.3
        assert_eq!(round_ratio(200, 3), 67); // 66.7
        assert_eq!(round_ratio(5, 2), 3);
        assert_eq!(round_ratio(-5, 2), -3);
        assert_eq!(round_ratio(-4, 3), -1);
        assert_eq!(round_ratio(0, 7), 0);
    }

    #[test]
    fn leaves_are_dotted_paths_and_parents_their_objects() {
        let schema = json!({"properties": {
            "a": {"properties": {"x": {}, "y": {}}},
            "b": {"type": "integer"}
        }});
        assert_eq!(leaves(&schema), ["a.x", "a.y", "b"]);
        assert_eq!(parent_of("a.x"), "a");
        assert_eq!(parent_of("b"), "");
    }

    fn search(metric: &str) -> Section {
        Section {
            id: metric.to_owned(),
            group: None,
            title: metric.to_owned(),
            metric: Some(metric.to_owned()),
            source: Source::Search(Search {
                speaker: None,
                keywords: Vec::new(),
                max_quotes: 3,
                probes: Vec::new(),
                query_vectors: Vec::new(),
            }),
        }
    }

    fn complement(metric: &str) -> Section {
        Section {
            source: Source::Complement { pass: 1 },
            ..search(metric)
        }
    }

    fn narrative(number: i16, sections: Vec<Section>) -> Pass {
        Pass {
            number,
            title: String::new(),
            prompt_name: String::new(),
            body: PassBody::Narrative(Report {
                title: String::new(),
                render_empty: RenderEmpty::Mark,
                exclusive: None,
                anchor: None,
                sections,
            }),
        }
    }

    fn out(passages: &[usize]) -> Outcome {
        Outcome {
            passages: passages.to_vec(),
            listed: Vec::new(),
        }
    }

    fn listed(n: usize) -> Outcome {
        Outcome {
            passages: Vec::new(),
            listed: vec!["x".to_owned(); n],
        }
    }

    fn rule(from: Vec<FromSections>, aggregate: Vec<Aggregate>) -> MetricsRule {
        MetricsRule {
            report_type: "t".to_owned(),
            note: String::new(),
            from_sections: from,
            aggregate,
        }
    }

    fn from(pass: Option<i16>, rule: SectionRule, cap: Option<i64>) -> FromSections {
        FromSections { pass, rule, cap }
    }

    fn agg(key: &str, op: AggregateOp, of: AggregateOf, min_quotes: Option<usize>) -> Aggregate {
        Aggregate {
            key: key.to_owned(),
            op,
            of,
            min_quotes,
        }
    }

    #[test]
    fn coverage_mean_and_deep_coverage_follow_audit_compliance() {
        let schema = json!({"properties": {
            "a": {}, "b": {}, "c": {}, "mean": {}, "deep": {}, "unused": {}
        }});
        let passes = vec![
            narrative(
                1,
                vec![
                    search("a"),
                    search("a"),
                    search("a"),
                    search("b"),
                    search("b"),
                ],
            ),
            Pass {
                number: 2,
                title: String::new(),
                prompt_name: String::new(),
                body: PassBody::Metrics,
            },
        ];
        let outcomes = vec![
            vec![
                out(&[1]),
                out(&[]),
                out(&[2, 3]),
                out(&[4, 5]),
                out(&[6, 7]),
            ],
            vec![],
        ];
        let r = rule(
            vec![from(Some(1), SectionRule::Coverage, None)],
            vec![
                agg("mean", AggregateOp::Mean, AggregateOf::SectionKeys, None),
                agg(
                    "deep",
                    AggregateOp::Coverage,
                    AggregateOf::SectionKeys,
                    Some(2),
                ),
            ],
        );
        let got = compute(&r, &passes, &outcomes, &schema);
        // a: 2 of 3 → 66.7 → 67; b: 100; mean (67 + 100) / 2 = 83.5 → 84;
        // deep: 3 of 5 sections have two passages → 60. "c" and "unused": no rule → null.
        assert_eq!(
            got,
            json!({"a": 67, "b": 100, "c": null, "mean": 84, "deep": 60, "unused": null})
        );
    }

    #[test]
    fn counts_of_sections_and_complements_sum_per_object() {
        let schema = json!({"properties": {
            "found": {"properties": {"x": {}, "y": {}, "total": {}}},
            "missing": {"properties": {"x": {}, "y": {}, "total": {}}}
        }});
        let passes = vec![
            narrative(
                1,
                vec![search("found.x"), search("found.x"), search("found.y")],
            ),
            narrative(2, vec![complement("missing.x"), complement("missing.y")]),
        ];
        let outcomes = vec![
            vec![out(&[1]), out(&[]), out(&[])],
            vec![listed(1), listed(1)],
        ];
        let r = rule(
            vec![
                from(Some(1), SectionRule::CountSections, None),
                from(Some(2), SectionRule::CountComplement, None),
            ],
            vec![
                agg("found.total", AggregateOp::Sum, AggregateOf::Siblings, None),
                agg(
                    "missing.total",
                    AggregateOp::Sum,
                    AggregateOf::Siblings,
                    None,
                ),
            ],
        );
        assert_eq!(
            compute(&r, &passes, &outcomes, &schema),
            json!({"found": {"x": 1, "y": 0, "total": 1},
                   "missing": {"x": 1, "y": 1, "total": 2}})
        );
    }

    #[test]
    fn distinct_passages_count_once_across_passes_up_to_the_cap() {
        let schema = json!({"properties": {"n": {}}});
        let passes = vec![
            narrative(1, vec![search("n"), search("n")]),
            narrative(2, vec![search("n")]),
        ];
        let outcomes = vec![vec![out(&[1, 2]), out(&[3])], vec![out(&[2, 9])]];
        let uncapped = rule(vec![from(None, SectionRule::CountPassages, None)], vec![]);
        assert_eq!(
            compute(&uncapped, &passes, &outcomes, &schema),
            json!({"n": 4})
        );
        let capped = rule(
            vec![from(None, SectionRule::CountPassages, Some(3))],
            vec![],
        );
        assert_eq!(
            compute(&capped, &passes, &outcomes, &schema),
            json!({"n": 3})
        );
        let first_only = rule(
            vec![from(Some(1), SectionRule::CountPassages, None)],
            vec![],
        );
        assert_eq!(
            compute(&first_only, &passes, &outcomes, &schema),
            json!({"n": 3})
        );
    }

    #[test]
    fn sums_and_means_of_nothing_are_null() {
        let schema = json!({"properties": {"x": {}, "y": {}, "sum": {}, "mean": {}}});
        let passes = vec![narrative(1, vec![])];
        let outcomes = vec![vec![]];
        let r = rule(
            vec![from(Some(1), SectionRule::CountSections, None)],
            vec![
                agg("sum", AggregateOp::Sum, AggregateOf::SectionKeys, None),
                agg("mean", AggregateOp::Mean, AggregateOf::SectionKeys, None),
            ],
        );
        assert_eq!(
            compute(&r, &passes, &outcomes, &schema),
            json!({"x": null, "y": null, "sum": null, "mean": null})
        );
    }
}
