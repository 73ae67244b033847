//! The prompt catalog (`common/prompts/catalog.toml` and its prompt files, embedded in the
//! binary), placeholder rendering, and the idempotent sync into `prompts` /
//! `prompts_buildings`. A prompt's version is the SHA-256 of its file.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::db::GenericClient;
use crate::{Error, Result};

mod files {
    include!(concat!(env!("OUT_DIR"), "/prompt_files.rs"));
}

const CATALOG_TOML: &str = include_str!("../../prompts/catalog.toml");

/// What a pass produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptKind {
    Narrative,
    Metrics,
    RoleLabelling,
}

/// What is substituted into a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PromptInput {
    #[serde(rename = "transcript")]
    Transcript,
    #[serde(rename = "transcript+previous")]
    TranscriptAndPrevious,
    #[serde(rename = "previous")]
    Previous,
}

/// One pass of the catalog with its text and version.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PromptSpec {
    pub name: String,
    pub scenario: String,
    pub report_type: String,
    pub buildings: Vec<String>,
    pub pass: i16,
    pub kind: PromptKind,
    pub title: String,
    pub file: String,
    pub input: PromptInput,
    #[serde(default)]
    pub schema: Option<String>,
    pub placeholders: Vec<String>,
    #[serde(skip)]
    pub text: &'static str,
    /// SHA-256 of the file, hex.
    #[serde(skip)]
    pub version: String,
}

#[derive(Debug, Deserialize)]
struct CatalogFile {
    format: u32,
    #[serde(rename = "prompt")]
    prompts: Vec<PromptSpec>,
}

/// The parsed catalog.
#[derive(Debug)]
pub struct Catalog {
    pub prompts: Vec<PromptSpec>,
}

impl Catalog {
    /// The catalog built into this binary (parsed and checked once).
    pub fn embedded() -> Result<&'static Catalog> {
        static CATALOG: OnceLock<std::result::Result<Catalog, String>> = OnceLock::new();
        CATALOG
            .get_or_init(|| Catalog::parse(CATALOG_TOML, files::PROMPT_FILES))
            .as_ref()
            .map_err(|reason| Error::Misconfigured {
                reason: format!("the built-in prompt catalog is broken: {reason}"),
            })
    }

    fn parse(toml_text: &str, files: &[(&str, &'static str)]) -> std::result::Result<Self, String> {
        let file: CatalogFile = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        if file.format != 1 {
            return Err(format!(
                "format {} is not supported (expected 1)",
                file.format
            ));
        }
        let by_path: HashMap<&str, &'static str> = files.iter().copied().collect();
        let mut prompts = file.prompts;
        let mut names = std::collections::HashSet::new();
        for p in &mut prompts {
            if !names.insert(p.name.clone()) {
                return Err(format!("prompt {} is listed twice", p.name));
            }
            p.text = by_path
                .get(p.file.as_str())
                .copied()
                .ok_or_else(|| format!("prompt {}: file {} is missing", p.name, p.file))?;
            p.version = hex(&Sha256::digest(p.text.as_bytes()));
            let found = placeholders_in(p.text);
            let mut declared = p.placeholders.clone();
            declared.sort();
            if found != declared {
                return Err(format!(
                    "prompt {}: the file uses {found:?} but the catalog declares {declared:?}",
                    p.name
                ));
            }
        }
        Ok(Self { prompts })
    }

    /// The passes of (report type, building) in order; empty for a pair the catalog lacks.
    pub fn passes(&self, report_type: &str, building: &str) -> Vec<&PromptSpec> {
        let mut passes: Vec<&PromptSpec> = self
            .prompts
            .iter()
            .filter(|p| p.report_type == report_type && p.buildings.iter().any(|b| b == building))
            .collect();
        passes.sort_by_key(|p| p.pass);
        passes
    }

    /// The speaker-role labelling prompt.
    pub fn role_labelling(&self) -> Option<&PromptSpec> {
        self.prompts
            .iter()
            .find(|p| p.kind == PromptKind::RoleLabelling)
    }

    pub fn get(&self, name: &str) -> Option<&PromptSpec> {
        self.prompts.iter().find(|p| p.name == name)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The distinct `{name}` placeholders of a text (lower-case ASCII letters and `_`), sorted.
pub fn placeholders_in(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    scan(text, |piece| {
        if let Piece::Placeholder(name) = piece
            && !found.iter().any(|f| f == name)
        {
            found.push(name.to_owned());
        }
    });
    found.sort();
    found
}

enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

fn scan<'a>(text: &'a str, mut each: impl FnMut(Piece<'a>)) {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let len = after
            .bytes()
            .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
            .count();
        if len > 0 && after.as_bytes().get(len) == Some(&b'}') {
            each(Piece::Text(&rest[..open]));
            each(Piece::Placeholder(&after[..len]));
            rest = &after[len + 1..];
        } else {
            each(Piece::Text(&rest[..=open]));
            rest = after;
        }
    }
    each(Piece::Text(rest));
}

/// Replaces every `{name}` that `values` knows in one pass (substituted text is not parsed
/// again, so a transcript with braces is safe); other braces stay as they are.
pub fn render(text: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out =
        String::with_capacity(text.len() + values.values().map(String::len).sum::<usize>());
    scan(text, |piece| match piece {
        Piece::Text(t) => out.push_str(t),
        Piece::Placeholder(name) => match values.get(name) {
            Some(v) => out.push_str(v),
            None => {
                out.push('{');
                out.push_str(name);
                out.push('}');
            }
        },
    });
    out
}

/// What a sync changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    /// New versions stored.
    pub inserted: Vec<String>,
    /// Stored versions that became active again, or whose bookkeeping was corrected.
    pub updated: Vec<String>,
    /// Names no longer in the catalog, deactivated (kept: reports refer to them).
    pub deactivated: Vec<String>,
    pub unchanged: usize,
}

/// Loads the catalog into `prompts` / `prompts_buildings`; run it in a transaction. A re-run
/// with unchanged files changes nothing.
pub async fn sync(client: &impl GenericClient, catalog: &Catalog) -> Result<SyncReport> {
    // One sync at a time (two deploys at once would race on the active flags).
    client
        .execute(
            "SELECT pg_advisory_xact_lock(hashtext('vox.prompts.sync'))",
            &[],
        )
        .await?;
    let mut report = SyncReport::default();
    for p in &catalog.prompts {
        let report_type_id: Option<i16> = if p.report_type.is_empty() {
            None
        } else {
            let row = client
                .query_opt(
                    "SELECT report_type_id FROM report_type WHERE code = $1",
                    &[&p.report_type],
                )
                .await?
                .ok_or_else(|| Error::UnknownReportType {
                    name: p.report_type.clone(),
                    scenario: p.scenario.clone(),
                })?;
            Some(row.get(0))
        };
        let mut building_ids: Vec<i16> = Vec::with_capacity(p.buildings.len());
        for b in &p.buildings {
            let row = client
                .query_opt("SELECT building_id FROM buildings WHERE code = $1", &[b])
                .await?
                .ok_or_else(|| Error::UnknownBuilding { name: b.clone() })?;
            building_ids.push(row.get(0));
        }
        building_ids.sort_unstable();
        let is_json = p.kind == PromptKind::Metrics;
        let existing = client
            .query_opt(
                "SELECT prompt_id, is_active, run_part, is_json_prompt, report_type_id,
                        ARRAY(SELECT building_id FROM prompts_buildings pb
                              WHERE pb.prompt_id = prompts.prompt_id ORDER BY building_id)
                 FROM prompts WHERE prompt_name = $1 AND version = $2",
                &[&p.name, &p.version],
            )
            .await?;
        let deactivate_others = "UPDATE prompts SET is_active = false
                                 WHERE prompt_name = $1 AND version <> $2 AND is_active";
        let prompt_id: i64 = match existing {
            None => {
                client
                    .execute(deactivate_others, &[&p.name, &p.version])
                    .await?;
                let row = client
                    .query_one(
                        "INSERT INTO prompts (prompt_name, prompt, run_part, is_json_prompt,
                                              report_type_id, version, is_active)
                         VALUES ($1, $2, $3, $4, $5, $6, true) RETURNING prompt_id",
                        &[
                            &p.name,
                            &p.text,
                            &p.pass,
                            &is_json,
                            &report_type_id,
                            &p.version,
                        ],
                    )
                    .await?;
                report.inserted.push(p.name.clone());
                row.get(0)
            }
            Some(row) => {
                let id: i64 = row.get(0);
                let same = row.get::<_, bool>(1)
                    && row.get::<_, i16>(2) == p.pass
                    && row.get::<_, bool>(3) == is_json
                    && row.get::<_, Option<i16>>(4) == report_type_id
                    && row.get::<_, Vec<i16>>(5) == building_ids;
                if same {
                    report.unchanged += 1;
                    continue;
                }
                client
                    .execute(deactivate_others, &[&p.name, &p.version])
                    .await?;
                client
                    .execute(
                        "UPDATE prompts SET is_active = true, run_part = $2, is_json_prompt = $3,
                                report_type_id = $4
                         WHERE prompt_id = $1",
                        &[&id, &p.pass, &is_json, &report_type_id],
                    )
                    .await?;
                report.updated.push(p.name.clone());
                id
            }
        };
        client
            .execute(
                "DELETE FROM prompts_buildings WHERE prompt_id = $1 AND building_id <> ALL($2)",
                &[&prompt_id, &building_ids],
            )
            .await?;
        client
            .execute(
                "INSERT INTO prompts_buildings (prompt_id, building_id)
                 SELECT $1, unnest($2::smallint[]) ON CONFLICT DO NOTHING",
                &[&prompt_id, &building_ids],
            )
            .await?;
    }
    let names: Vec<&str> = catalog.prompts.iter().map(|p| p.name.as_str()).collect();
    for row in client
        .query(
            "UPDATE prompts SET is_active = false
             WHERE is_active AND prompt_name <> ALL($1) RETURNING prompt_name",
            &[&names],
        )
        .await?
    {
        report.deactivated.push(row.get(0));
    }
    Ok(report)
}

/// The stored id of the active version of prompt `name` with this `version`, if synced.
pub async fn stored_id(
    client: &impl GenericClient,
    name: &str,
    version: &str,
) -> Result<Option<i64>> {
    let stmt = client
        .prepare_cached("SELECT prompt_id FROM prompts WHERE prompt_name = $1 AND version = $2")
        .await?;
    Ok(client
        .query_opt(&stmt, &[&name, &version])
        .await?
        .map(|r| r.get(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_is_consistent() {
        let catalog = Catalog::embedded().expect("the catalog parses");
        assert_eq!(catalog.prompts.len(), 38);
        assert!(catalog.role_labelling().is_some());
        let passes = catalog.passes("structured-audit", "hotel");
        assert_eq!(
            passes.iter().map(|p| p.pass).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(passes.last().map(|p| p.kind), Some(PromptKind::Metrics));
        assert!(
            catalog
                .passes("structured-audit", "non-building")
                .is_empty()
        );
        for p in &catalog.prompts {
            assert_eq!(p.version.len(), 64);
            if p.kind == PromptKind::Metrics {
                let schema = p.schema.as_deref().expect("metrics passes name a schema");
                let (rt, b) = (p.report_type.as_str(), p.buildings[0].as_str());
                assert_eq!(schema, format!("metrics/{rt}.{b}.json"));
                assert!(crate::metrics::schema(rt, b).is_some(), "{schema}");
            }
        }
    }

    #[test]
    fn render_substitutes_once_and_leaves_other_braces() {
        let mut values = BTreeMap::new();
        values.insert("transcript", "он сказал {client} и {\"a\": 1}".to_owned());
        values.insert("client", "Иванов".to_owned());
        let out = render(
            "Клиент: {client}\n{transcript}\nJSON: {\"k\": {n}} {x",
            &values,
        );
        assert_eq!(
            out,
            "Клиент: Иванов\nон сказал {client} и {\"a\": 1}\nJSON: {\"k\": {n}} {x"
        );
        assert_eq!(placeholders_in("{a} {b_c} {a} {D} {}"), vec!["a", "b_c"]);
    }

    #[test]
    fn a_catalog_with_a_missing_file_or_stray_placeholder_is_refused() {
        let toml_text = r#"
format = 1
[[prompt]]
name = "x"
scenario = "design"
report_type = "structured-audit"
buildings = ["hotel"]
pass = 1
kind = "narrative"
title = "t"
file = "a.md"
input = "transcript"
placeholders = ["transcript"]
"#;
        let err = Catalog::parse(toml_text, &[]).expect_err("missing file");
        assert!(err.contains("a.md"), "{err}");
        let err = Catalog::parse(toml_text, &[("a.md", "{transcript} {client}")])
            .expect_err("undeclared placeholder");
        assert!(err.contains("client"), "{err}");
        assert!(Catalog::parse(toml_text, &[("a.md", "Текст: {transcript}")]).is_ok());
    }
}
