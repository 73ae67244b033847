//! `sections.toml` parsed, checked against the prompt catalog and the metric schemas, and
//! compiled into the plan of every (report type, building): its passes in catalog order,
//! the sections of each narrative pass and the metric rule of its metrics pass.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use super::roles::Role;
use super::rules::leaves;
use super::stem::stem;
use super::text::normalize;
use crate::analysis::catalog::{Catalog, PromptKind};
use crate::embed::Embedder;
use crate::{Error, Result};

// ------------------------------------------------------------------ the file as written

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SectionsFile {
    format: u32,
    defaults: Defaults,
    report: Vec<RawReport>,
    metrics_rule: Vec<MetricsRule>,
}

/// `[defaults]`: search parameters and markers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Defaults {
    pub empty_marker: String,
    pub complement_empty_marker: String,
    pub max_quotes: usize,
    pub min_score: f64,
    pub keyword_weight: f64,
    pub keyword_cap: usize,
    pub min_passage_chars: usize,
    pub max_passage_chars: usize,
    pub exclusive: Exclusive,
}

/// Whether a passage may serve several sections of one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Exclusive {
    /// Each passage goes to at most one section of a pass, the one where it scores highest.
    Pass,
    /// A passage goes to the section where it scores highest and also to every other
    /// section where it qualifies and matches at least one of that section's keywords: one
    /// statement («читаю отзывы про завтраки») may support several factors.
    Keywords,
    /// A passage may be quoted by every section where it qualifies.
    None,
}

/// How a pass shows a section without evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RenderEmpty {
    Mark,
    Omit,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    report_type: String,
    building: String,
    pass: i16,
    prompt: String,
    title: String,
    render_empty: RenderEmpty,
    speaker: Option<Role>,
    /// Overrides `defaults.exclusive` for this pass.
    exclusive: Option<Exclusive>,
    #[serde(default)]
    anchor_tokens: Vec<String>,
    #[serde(default)]
    anchor_place: bool,
    section: Vec<RawSection>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawSource {
    #[default]
    Transcript,
    Complement,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    id: String,
    group: Option<String>,
    title: String,
    speaker: Option<Role>,
    query: Option<String>,
    #[serde(default)]
    keywords: Vec<String>,
    metric: Option<String>,
    max_quotes: Option<usize>,
    #[serde(default)]
    source: RawSource,
    complement_pass: Option<i16>,
}

/// `[[metrics_rule]]` of one report type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsRule {
    pub report_type: String,
    #[allow(dead_code)] // documentation for people; kept so the file's fields stay checked
    pub note: String,
    #[serde(default)]
    pub from_sections: Vec<FromSections>,
    #[serde(default)]
    pub aggregate: Vec<Aggregate>,
}

/// `[[metrics_rule.from_sections]]`: keys fed by sections of `pass` (any pass when absent).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FromSections {
    pub pass: Option<i16>,
    pub rule: SectionRule,
    pub cap: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SectionRule {
    Coverage,
    CountSections,
    CountComplement,
    CountPassages,
}

/// `[[metrics_rule.aggregate]]`: a key computed from other keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Aggregate {
    pub key: String,
    pub op: AggregateOp,
    pub of: AggregateOf,
    pub min_quotes: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AggregateOp {
    Sum,
    Mean,
    Coverage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AggregateOf {
    Siblings,
    SectionKeys,
}

// ------------------------------------------------------------------ the compiled plan

/// Everything the engine runs: the defaults and one plan per valid (report type, building).
#[derive(Debug)]
pub(crate) struct Spec {
    pub defaults: Defaults,
    pub pairs: Vec<Pair>,
}

/// The passes of one (report type, building), in catalog order.
#[derive(Debug)]
pub(crate) struct Pair {
    pub report_type: String,
    pub building: String,
    pub scenario: String,
    pub passes: Vec<Pass>,
    pub rule: MetricsRule,
}

#[derive(Debug)]
pub(crate) struct Pass {
    pub number: i16,
    /// The catalog's title of the pass.
    pub title: String,
    /// The catalog's prompt name of the pass.
    pub prompt_name: String,
    pub body: PassBody,
}

#[derive(Debug)]
pub(crate) enum PassBody {
    Narrative(Report),
    Metrics,
}

/// One `[[report]]`: a narrative pass built from the transcript.
#[derive(Debug)]
pub(crate) struct Report {
    pub title: String,
    pub render_empty: RenderEmpty,
    /// `exclusive` of this pass, else `defaults.exclusive`.
    pub exclusive: Option<Exclusive>,
    pub anchor: Option<Anchor>,
    pub sections: Vec<Section>,
}

/// The venue filter of venue-factors: normalized whole words, and whether the place name
/// also anchors.
#[derive(Debug)]
pub(crate) struct Anchor {
    pub tokens: BTreeSet<String>,
    pub place: bool,
}

#[derive(Debug)]
pub(crate) struct Section {
    pub id: String,
    pub group: Option<String>,
    pub title: String,
    pub metric: Option<String>,
    pub source: Source,
}

#[derive(Debug)]
pub(crate) enum Source {
    Search(Search),
    /// Lists the sections of pass `pass` whose group is this section's title and which found
    /// nothing.
    Complement {
        pass: i16,
    },
}

#[derive(Debug)]
pub(crate) struct Search {
    /// The section's speaker, or else the report's.
    pub speaker: Option<Role>,
    /// Snowball stems of the keywords, each once.
    pub keywords: Vec<String>,
    pub max_quotes: usize,
    /// What a passage is compared with: the query, each of its sentences when it has
    /// several, and the section's title. A guest's short sentence is often nearer one
    /// sentence of the query, or the title, than the whole query.
    pub probes: Vec<String>,
    /// E(probe) for every probe, filled by [`Spec::embed_queries`]; a passage's meaning score
    /// is its best cosine with them.
    pub query_vectors: Vec<Vec<f32>>,
}

impl Spec {
    pub(crate) fn pair(&self, report_type: &str, building: &str) -> Option<&Pair> {
        self.pairs
            .iter()
            .find(|p| p.report_type == report_type && p.building == building)
    }

    /// Embeds every section query, one call per report (so a report's vectors depend only
    /// on its own queries, whatever the embedder's batching).
    pub(crate) fn embed_queries(&mut self, embedder: &dyn Embedder) -> Result<()> {
        for pair in &mut self.pairs {
            for pass in &mut pair.passes {
                let PassBody::Narrative(report) = &mut pass.body else {
                    continue;
                };
                let mut searches: Vec<&mut Search> = report
                    .sections
                    .iter_mut()
                    .filter_map(|s| match &mut s.source {
                        Source::Search(search) => Some(search),
                        Source::Complement { .. } => None,
                    })
                    .collect();
                let probes: Vec<&str> = searches
                    .iter()
                    .flat_map(|s| s.probes.iter().map(String::as_str))
                    .collect();
                let mut vectors = embedder.embed(&probes)?.into_iter();
                if vectors.len() != probes.len() {
                    return Err(Error::Analysis {
                        reason: format!(
                            "the embedder returned {} vectors for {} queries",
                            vectors.len(),
                            probes.len()
                        ),
                    });
                }
                for search in &mut searches {
                    search.query_vectors = vectors.by_ref().take(search.probes.len()).collect();
                }
            }
        }
        Ok(())
    }
}

fn broken(reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        field: "sections.toml",
        reason: reason.into(),
    }
}

/// Parses `sections.toml` and checks it against the catalog and the metric schemas: every
/// narrative pass of the catalog has exactly one `[[report]]`, every section's metric and
/// every aggregate is a key of its pair's schema, every schema key is computed by exactly
/// one rule, complement sections point at an earlier narrative pass with their group.
pub(crate) fn compile(sections_toml: &str, catalog: &Catalog) -> Result<Spec> {
    let file: SectionsFile =
        toml::from_str(sections_toml).map_err(|e| broken(format!("not valid TOML: {e}")))?;
    if file.format != 1 {
        return Err(broken(format!(
            "format {} is not supported (expected 1)",
            file.format
        )));
    }
    let d = &file.defaults;
    if d.max_quotes == 0 || d.max_passage_chars == 0 || d.min_passage_chars > d.max_passage_chars {
        return Err(broken(
            "defaults need max_quotes >= 1 and 0 < min_passage_chars <= max_passage_chars",
        ));
    }

    // (report type, building) → catalog passes.
    let mut catalog_pairs: BTreeMap<(String, String), Vec<&crate::analysis::catalog::PromptSpec>> =
        BTreeMap::new();
    for p in &catalog.prompts {
        if p.kind == PromptKind::RoleLabelling {
            continue;
        }
        for b in &p.buildings {
            catalog_pairs
                .entry((p.report_type.clone(), b.clone()))
                .or_default()
                .push(p);
        }
    }

    let mut reports: BTreeMap<(String, String, i16), RawReport> = BTreeMap::new();
    for r in file.report {
        let key = (r.report_type.clone(), r.building.clone(), r.pass);
        if reports.contains_key(&key) {
            return Err(broken(format!(
                "{}.{} pass {} has two [[report]] entries",
                key.0, key.1, key.2
            )));
        }
        reports.insert(key, r);
    }

    let mut rules: BTreeMap<String, MetricsRule> = BTreeMap::new();
    for rule in file.metrics_rule {
        if rules.contains_key(&rule.report_type) {
            return Err(broken(format!(
                "{} has two [[metrics_rule]] entries",
                rule.report_type
            )));
        }
        rules.insert(rule.report_type.clone(), rule);
    }

    let mut pairs = Vec::new();
    for ((report_type, building), mut prompts) in catalog_pairs {
        let at = format!("{report_type}.{building}");
        prompts.sort_by_key(|p| p.pass);
        let numbers: Vec<i16> = prompts.iter().map(|p| p.pass).collect();
        let expected: Vec<i16> = (1..).take(prompts.len()).collect();
        if numbers != expected {
            return Err(broken(format!(
                "{at}: catalog passes are {numbers:?}, not 1..n"
            )));
        }
        let metrics_passes = prompts
            .iter()
            .filter(|p| p.kind == PromptKind::Metrics)
            .count();
        if metrics_passes != 1 || prompts.last().map(|p| p.kind) != Some(PromptKind::Metrics) {
            return Err(broken(format!(
                "{at}: the catalog must end with exactly one metrics pass"
            )));
        }
        let schema = crate::metrics::schema(&report_type, &building)
            .ok_or_else(|| broken(format!("{at}: no metrics schema")))?;
        let scenario = prompts[0].scenario.clone();

        let mut passes = Vec::new();
        for p in &prompts {
            let body = match p.kind {
                PromptKind::Metrics => PassBody::Metrics,
                _ => {
                    let raw = reports
                        .remove(&(report_type.clone(), building.clone(), p.pass))
                        .ok_or_else(|| broken(format!("{at} pass {} has no [[report]]", p.pass)))?;
                    if raw.prompt != p.name {
                        return Err(broken(format!(
                            "{at} pass {}: prompt {:?} is not the catalog's {:?}",
                            p.pass, raw.prompt, p.name
                        )));
                    }
                    PassBody::Narrative(compile_report(raw, p.pass, &file.defaults, schema)?)
                }
            };
            passes.push(Pass {
                number: p.pass,
                title: p.title.clone(),
                prompt_name: p.name.clone(),
                body,
            });
        }
        check_complements(&at, &passes)?;
        let rule = rules
            .get(&report_type)
            .cloned()
            .ok_or_else(|| broken(format!("{report_type} has no [[metrics_rule]]")))?;
        check_rule(&at, &rule, &passes, schema)?;
        pairs.push(Pair {
            report_type,
            building,
            scenario,
            passes,
            rule,
        });
    }
    if let Some((rt, b, pass)) = reports.keys().next() {
        return Err(broken(format!(
            "[[report]] {rt}.{b} pass {pass} is not a narrative pass of the catalog"
        )));
    }
    let known: BTreeSet<&str> = pairs.iter().map(|p| p.report_type.as_str()).collect();
    if let Some(extra) = rules.keys().find(|k| !known.contains(k.as_str())) {
        return Err(broken(format!(
            "[[metrics_rule]] {extra} is not a report type of the catalog"
        )));
    }
    Ok(Spec {
        defaults: file.defaults,
        pairs,
    })
}

fn compile_report(
    raw: RawReport,
    pass: i16,
    defaults: &Defaults,
    schema: &Value,
) -> Result<Report> {
    let at = format!("{}.{} pass {pass}", raw.report_type, raw.building);
    let schema_keys: BTreeSet<String> = leaves(schema).into_iter().collect();
    let mut ids = BTreeSet::new();
    let mut sections = Vec::new();
    for s in raw.section {
        let at = format!("{at} section {}", s.id);
        if !ids.insert(s.id.clone()) {
            return Err(broken(format!("{at}: the id is used twice")));
        }
        if let Some(metric) = &s.metric
            && !schema_keys.contains(metric)
        {
            return Err(broken(format!("{at}: metric {metric} is not a schema key")));
        }
        let source = match s.source {
            RawSource::Complement => {
                let pass = s
                    .complement_pass
                    .ok_or_else(|| broken(format!("{at}: complement without complement_pass")))?;
                Source::Complement { pass }
            }
            RawSource::Transcript => {
                if s.complement_pass.is_some() {
                    return Err(broken(format!(
                        "{at}: complement_pass needs source = \"complement\""
                    )));
                }
                let query = s
                    .query
                    .filter(|q| !q.trim().is_empty())
                    .ok_or_else(|| broken(format!("{at}: no query")))?;
                let max_quotes = s.max_quotes.unwrap_or(defaults.max_quotes);
                if max_quotes == 0 {
                    return Err(broken(format!("{at}: max_quotes must be at least 1")));
                }
                let mut probes = vec![query.clone()];
                let sentences = super::text::sentences(0, &query);
                if sentences.len() > 1 {
                    probes.extend(sentences.iter().map(|s| query[s.start..s.end].to_owned()));
                }
                probes.push(s.title.clone());
                Source::Search(Search {
                    speaker: s.speaker.or(raw.speaker),
                    probes,
                    keywords: {
                        let mut stems: Vec<String> = Vec::with_capacity(s.keywords.len());
                        for k in &s.keywords {
                            let k = stem(k);
                            if !k.is_empty() && !stems.contains(&k) {
                                stems.push(k);
                            }
                        }
                        stems
                    },
                    max_quotes,
                    query_vectors: Vec::new(),
                })
            }
        };
        sections.push(Section {
            id: s.id,
            group: s.group,
            title: s.title,
            metric: s.metric,
            source,
        });
    }
    let anchor = (!raw.anchor_tokens.is_empty() || raw.anchor_place).then(|| Anchor {
        tokens: raw
            .anchor_tokens
            .iter()
            .map(|t| normalize(t.trim()))
            .collect(),
        place: raw.anchor_place,
    });
    Ok(Report {
        title: raw.title,
        render_empty: raw.render_empty,
        exclusive: raw.exclusive,
        anchor,
        sections,
    })
}

fn narrative(pass: &Pass) -> Option<&Report> {
    match &pass.body {
        PassBody::Narrative(r) => Some(r),
        PassBody::Metrics => None,
    }
}

fn check_complements(at: &str, passes: &[Pass]) -> Result<()> {
    for pass in passes {
        let Some(report) = narrative(pass) else {
            continue;
        };
        for s in &report.sections {
            let Source::Complement { pass: target } = s.source else {
                continue;
            };
            let source = passes
                .iter()
                .filter(|p| p.number == target && target < pass.number)
                .find_map(narrative)
                .ok_or_else(|| {
                    broken(format!(
                        "{at} pass {} section {}: complement_pass {target} is not an earlier narrative pass",
                        pass.number, s.id
                    ))
                })?;
            let has_group = source.sections.iter().any(|t| {
                t.group.as_deref() == Some(s.title.as_str())
                    && matches!(t.source, Source::Search(_))
            });
            if !has_group {
                return Err(broken(format!(
                    "{at} pass {} section {}: pass {target} has no group {:?}",
                    pass.number, s.id, s.title
                )));
            }
        }
    }
    Ok(())
}

/// The keys that `from` computes for a pair, each with whether its sections are complements.
pub(crate) fn keys_from<'a>(from: &FromSections, passes: &'a [Pass]) -> BTreeMap<&'a str, bool> {
    let mut keys = BTreeMap::new();
    for pass in passes {
        if from.pass.is_some_and(|n| n != pass.number) {
            continue;
        }
        let Some(report) = narrative(pass) else {
            continue;
        };
        for s in &report.sections {
            if let Some(metric) = &s.metric {
                let complement = matches!(s.source, Source::Complement { .. });
                keys.insert(metric.as_str(), complement);
            }
        }
    }
    keys
}

/// Every schema key computed exactly once; rules fit their sections.
fn check_rule(at: &str, rule: &MetricsRule, passes: &[Pass], schema: &Value) -> Result<()> {
    let schema_keys = leaves(schema);
    let mut covered: BTreeMap<String, usize> = BTreeMap::new();
    let mut fed: BTreeSet<String> = BTreeSet::new();
    for pass in passes.iter().filter_map(narrative) {
        fed.extend(pass.sections.iter().filter_map(|s| s.metric.clone()));
    }
    for from in &rule.from_sections {
        if let Some(n) = from.pass
            && !passes
                .iter()
                .any(|p| p.number == n && narrative(p).is_some())
        {
            return Err(broken(format!(
                "{at}: from_sections names pass {n}, not a narrative pass"
            )));
        }
        for (key, complement) in keys_from(from, passes) {
            if complement != (from.rule == SectionRule::CountComplement) {
                return Err(broken(format!(
                    "{at}: rule {:?} does not fit the sections of {key}",
                    from.rule
                )));
            }
            *covered.entry(key.to_owned()).or_default() += 1;
        }
    }
    for agg in &rule.aggregate {
        if !schema_keys.contains(&agg.key) {
            return Err(broken(format!(
                "{at}: aggregate {} is not a schema key",
                agg.key
            )));
        }
        *covered.entry(agg.key.clone()).or_default() += 1;
    }
    for key in &schema_keys {
        match covered.get(key) {
            Some(1) => {}
            Some(n) => {
                return Err(broken(format!("{at}: key {key} is computed by {n} rules")));
            }
            None => {
                let why = if fed.contains(key) {
                    "its sections are outside every from_sections pass"
                } else {
                    "no rule computes it"
                };
                return Err(broken(format!("{at}: key {key}: {why}")));
            }
        }
    }
    Ok(())
}
