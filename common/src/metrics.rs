//! Metric reports: every report type ends with a metrics pass whose JSON must match the
//! schema of its (report type, building), kept in `common/schemas/metrics/`.

use std::sync::OnceLock;

use serde_json::Value;

use crate::{Error, Result};

macro_rules! schemas {
    ($($report_type:literal . $building:literal),* $(,)?) => {
        &[$((
            $report_type,
            $building,
            include_str!(concat!("../schemas/metrics/", $report_type, ".", $building, ".json")),
        )),*]
    };
}

/// (report type id, building id, JSON Schema) for every valid pair of the domain.
const SCHEMAS: &[(&str, &str, &str)] = schemas![
    "interview-methodology"."non-building",
    "links"."non-building",
    "common-factors"."hotel",
    "common-factors"."restaurant",
    "common-factors"."spa",
    "venue-factors"."hotel",
    "venue-factors"."restaurant",
    "venue-factors"."spa",
    "audit-methodology"."non-building",
    "audit-compliance"."hotel",
    "audit-compliance"."restaurant",
    "audit-compliance"."spa",
    "structured-audit"."hotel",
    "structured-audit"."restaurant",
    "structured-audit"."spa",
];

struct Compiled {
    report_type: &'static str,
    building: &'static str,
    schema: Value,
    validator: jsonschema::Validator,
}

fn validators() -> &'static [Compiled] {
    static VALIDATORS: OnceLock<Vec<Compiled>> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        SCHEMAS
            .iter()
            .map(|&(report_type, building, text)| {
                // The schemas are compiled into the binary and checked by the tests below,
                // so a broken one is a build defect, not a runtime condition.
                let schema: Value = serde_json::from_str(text).expect("embedded schema is JSON");
                let validator =
                    jsonschema::validator_for(&schema).expect("embedded schema compiles");
                Compiled {
                    report_type,
                    building,
                    schema,
                    validator,
                }
            })
            .collect()
    })
}

fn compiled(report_type: &str, building: &str) -> Option<&'static Compiled> {
    validators()
        .iter()
        .find(|c| c.report_type == report_type && c.building == building)
}

/// The JSON Schema of a pair's metrics, if the pair has one.
pub fn schema(report_type: &str, building: &str) -> Option<&'static Value> {
    compiled(report_type, building).map(|c| &c.schema)
}

/// A complete instance of a pair's schema with every number at zero: what a metrics pass
/// returns when it found nothing to count. Useful as an example in prompts and documents.
pub fn example(report_type: &str, building: &str) -> Option<Value> {
    fn fill(schema: &Value) -> Value {
        match schema.get("properties") {
            Some(Value::Object(props)) => Value::Object(
                props
                    .iter()
                    .map(|(k, sub)| (k.clone(), fill(sub)))
                    .collect(),
            ),
            _ => Value::from(0),
        }
    }
    schema(report_type, building).map(fill)
}

/// Checks `metrics` against the schema of (report type, building); the error lists every
/// violation with its JSON path.
pub fn validate(report_type: &str, building: &str, metrics: &Value) -> Result<()> {
    let invalid = |details: String| Error::InvalidMetrics {
        report_type: report_type.to_owned(),
        building: building.to_owned(),
        details,
    };
    let compiled = compiled(report_type, building)
        .ok_or_else(|| invalid("no metrics schema exists for this pair".into()))?;
    let problems: Vec<String> = compiled
        .validator
        .iter_errors(metrics)
        .map(|e| {
            let path = e.instance_path().to_string();
            let at = if path.is_empty() {
                "/".to_owned()
            } else {
                path
            };
            format!("{at}: {e}")
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(invalid(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_pair_has_a_schema_that_accepts_a_complete_object() {
        for &(report_type, building, _) in SCHEMAS {
            let instance = example(report_type, building).unwrap();
            validate(report_type, building, &instance)
                .unwrap_or_else(|e| panic!("{report_type}.{building}: {e}"));
        }
    }

    #[test]
    fn missing_unknown_and_mistyped_keys_are_rejected_with_their_path() {
        let mut good = example("links", "non-building").unwrap();
        validate("links", "non-building", &good).unwrap();

        good["лишний_ключ"] = json!(1);
        let err = validate("links", "non-building", &good)
            .unwrap_err()
            .to_string();
        assert!(err.contains("лишний_ключ"), "{err}");

        let err = validate(
            "links",
            "non-building",
            &json!({"количество_выявленных_связок": "ten"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/количество_выявленных_связок"), "{err}");

        let err = validate("links", "non-building", &json!({}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("количество_выявленных_связок"), "{err}");
    }

    #[test]
    fn a_pair_without_schema_is_an_error_naming_it() {
        let err = validate("links", "hotel", &json!({}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("links") && err.contains("hotel"), "{err}");
    }
}
