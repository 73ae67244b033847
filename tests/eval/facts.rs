//! The report-quality evaluation set (`tests/eval/README.md`): scripts of
//! `infra/local/speech/dialogues/` with their key facts in `tests/eval/facts/<id>.toml`, and
//! how a run of the offline engine is scored against them. Shared by the `report_quality`
//! bench and the `eval` tests (each includes this file as a module).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use common::analysis::offline::{OfflineEngine, SectionInfo, stems};
use common::analysis::{JobInput, PassKind, quotes};
use common::db::transcription::Segment;
use serde::Deserialize;
use serde_json::{Value, json};

/// `tests/eval/facts/<id>.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactsFile {
    /// The venue's name as the metadata would carry it (venue factors anchor on it).
    pub place: Option<String>,
    pub fact: Vec<Fact>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fact {
    pub text: String,
    /// Report types whose `sections` are the right place; the first one's metrics hold
    /// `metric`.
    pub reports: Vec<String>,
    /// Section ids (`sections.toml`) of those reports where the fact belongs.
    pub sections: Vec<String>,
    pub metric: Option<String>,
    /// Alternative word sets; a quote holding every word of one set states the fact.
    pub any: Vec<Vec<String>>,
}

/// A fact with its word sets as stems.
pub struct Compiled {
    pub fact: Fact,
    sets: Vec<Vec<String>>,
}

impl Compiled {
    pub fn new(fact: Fact) -> Self {
        let sets = fact
            .any
            .iter()
            .map(|set| set.iter().flat_map(|w| stems(w)).collect())
            .collect();
        Self { fact, sets }
    }

    pub fn stated_in(&self, quote_stems: &BTreeSet<String>) -> bool {
        self.sets
            .iter()
            .any(|set| !set.is_empty() && set.iter().all(|s| quote_stems.contains(s)))
    }
}

/// One script of the evaluation set.
pub struct Transcript {
    pub id: String,
    pub kind: String,
    pub building: String,
    pub turns: Vec<(String, String)>,
    pub facts: Vec<Compiled>,
    pub place: Option<String>,
}

/// One quote of a report, where it stands.
struct Quoted {
    report_type: String,
    section: Option<String>,
    stems: BTreeSet<String>,
    verified: bool,
}

#[derive(Default, Clone, Copy)]
pub struct Tally {
    pub facts: usize,
    pub found: usize,
    pub placed: usize,
    pub metric_facts: usize,
    pub metric_ok: usize,
    pub quotes: usize,
    pub verified: usize,
}

impl Tally {
    pub fn add(&mut self, o: &Tally) {
        self.facts += o.facts;
        self.found += o.found;
        self.placed += o.placed;
        self.metric_facts += o.metric_facts;
        self.metric_ok += o.metric_ok;
        self.quotes += o.quotes;
        self.verified += o.verified;
    }
}

/// The scripts with a facts file, in name order; with `wanted`, those whose ids contain one
/// of its strings. `root` is the repository.
pub fn load_set(root: &Path, wanted: Option<&[&str]>) -> Result<Vec<Transcript>> {
    let facts_dir = root.join("tests/eval/facts");
    let mut ids: Vec<String> = std::fs::read_dir(&facts_dir)
        .with_context(|| facts_dir.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    ids.sort();
    if let Some(wanted) = wanted {
        ids.retain(|id| wanted.iter().any(|w| id.contains(w)));
    }
    let mut out = Vec::new();
    for id in ids {
        let script = root.join(format!("infra/local/speech/dialogues/{id}.txt"));
        let text =
            std::fs::read_to_string(&script).with_context(|| script.display().to_string())?;
        let (mut kind, mut building) = (String::new(), String::new());
        let mut turns = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(header) = line.strip_prefix('#') {
                let (key, value) = header.split_once(':').unwrap_or((header, ""));
                match key.trim() {
                    "kind" => kind = value.trim().to_owned(),
                    "building" => building = value.trim().to_owned(),
                    _ => {}
                }
            } else if let Some((speaker, said)) = line.split_once(':') {
                turns.push((speaker.trim().to_owned(), said.trim().to_owned()));
            }
        }
        let path = root.join(format!("tests/eval/facts/{id}.toml"));
        let file: FactsFile = toml::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| path.display().to_string())?;
        let facts: Vec<Compiled> = file.fact.into_iter().map(Compiled::new).collect();
        // A fact the script does not state would count as the engine's miss.
        for f in &facts {
            let stated = turns.iter().any(|(_, said)| {
                let s: BTreeSet<String> = stems(said).into_iter().collect();
                f.stated_in(&s)
            });
            if !stated {
                bail!(
                    "{id}: no turn states {:?} as its words are given",
                    f.fact.text
                );
            }
        }
        out.push(Transcript {
            id,
            kind,
            building,
            turns,
            place: file.place,
            facts,
        });
    }
    Ok(out)
}

/// A segment as the store would hold it (fields the struct may gain take their defaults).
pub fn segment(start_ms: i64, end_ms: i64, text: &str, speaker: Option<&str>) -> Result<Segment> {
    let mut v = json!({"start_ms": start_ms, "end_ms": end_ms, "text": text});
    if let Some(s) = speaker {
        v["speaker"] = json!(s);
    }
    Ok(serde_json::from_value(v)?)
}

/// The script's turns as segments: times from the synthesized turns when present.
pub fn reference_segments(t: &Transcript, dialogues: &Path) -> Result<Vec<Segment>> {
    let tsv = std::fs::read_to_string(dialogues.join(format!("{}.turns.tsv", t.id))).ok();
    let times: Vec<(i64, i64)> = tsv
        .as_deref()
        .map(|tsv| {
            tsv.lines()
                .skip(1)
                .filter_map(|l| {
                    let mut f = l.split('\t');
                    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut at = 500i64;
    let mut out = Vec::new();
    for (i, (speaker, said)) in t.turns.iter().enumerate() {
        let (start, end) = match times.get(i) {
            Some(&(s, e)) if times.len() == t.turns.len() => (s, e),
            _ => (at, at + 70 * said.chars().count() as i64),
        };
        at = end + 600;
        let role = (t.kind == "interview").then_some(match speaker.as_str() {
            "S1" => "Сотрудник",
            _ => "Клиент",
        });
        out.push(segment(start, end, said, role)?);
    }
    Ok(out)
}

/// The (scenario, report type, building) of every report that fits the transcript.
pub fn reports(t: &Transcript) -> Vec<(&'static str, &'static str, String)> {
    let venue = t.building != "non-building";
    let b = t.building.clone();
    let nb = || "non-building".to_owned();
    let mut out = Vec::new();
    if t.kind == "interview" {
        out.push(("interview", "interview-methodology", nb()));
        out.push(("interview", "links", nb()));
        if venue {
            out.push(("interview", "common-factors", b.clone()));
            out.push(("interview", "venue-factors", b));
        }
    } else {
        out.push(("design", "audit-methodology", nb()));
        if venue {
            out.push(("design", "audit-compliance", b.clone()));
            out.push(("design", "structured-audit", b));
        }
    }
    out
}

/// Runs the reports on `segments` and scores the facts; also returns the facts missed, or
/// found only outside their sections. With `VOX_BENCH_DUMP=<dir>` every report is written
/// there as `<id>.<label>.<report type>.md`.
pub fn evaluate(
    engine: &OfflineEngine,
    t: &Transcript,
    segments: Vec<Segment>,
    label: &str,
) -> Result<(Tally, Vec<String>)> {
    let mut quoted: Vec<Quoted> = Vec::new();
    let mut metrics: Vec<(String, Value)> = Vec::new();
    for (scenario, report_type, building) in reports(t) {
        let job = JobInput {
            scenario: scenario.to_owned(),
            report_type: report_type.to_owned(),
            building: building.clone(),
            place_building: (t.building != "non-building").then(|| t.building.clone()),
            client: None,
            employee: None,
            place: t.place.clone(),
            city: None,
            zones: Vec::new(),
            date: None,
            segments: segments.clone(),
        };
        let out = engine
            .analyze(&job)
            .with_context(|| format!("{} {report_type}.{building}", t.id))?;
        if let Some(dir) = std::env::var_os("VOX_BENCH_DUMP") {
            let dir = Path::new(&dir);
            std::fs::create_dir_all(dir)?;
            let text: Vec<&str> = out.passes.iter().map(|p| p.text.as_str()).collect();
            let name = format!("{}.{label}.{report_type}.md", t.id);
            std::fs::write(dir.join(name), text.join("\n\n"))?;
        }
        let sections = engine.sections(report_type, &building);
        for pass in &out.passes {
            match pass.kind {
                PassKind::Narrative => {
                    for (section, quote) in sectioned_quotes(&pass.text, pass.pass, &sections) {
                        quoted.push(Quoted {
                            report_type: report_type.to_owned(),
                            section,
                            stems: stems(&quote).into_iter().collect(),
                            verified: segments.iter().any(|s| s.text.contains(&quote)),
                        });
                    }
                }
                PassKind::Metrics => {
                    if let Some(m) = &pass.metrics {
                        metrics.push((report_type.to_owned(), m.clone()));
                    }
                }
            }
        }
    }

    let mut tally = Tally {
        facts: t.facts.len(),
        quotes: quoted.len(),
        verified: quoted.iter().filter(|q| q.verified).count(),
        ..Tally::default()
    };
    let mut missed = Vec::new();
    for f in &t.facts {
        let found = quoted.iter().any(|q| f.stated_in(&q.stems));
        let placed = quoted.iter().any(|q| {
            f.fact.reports.contains(&q.report_type)
                && q.section
                    .as_ref()
                    .is_some_and(|s| f.fact.sections.contains(s))
                && f.stated_in(&q.stems)
        });
        if found {
            tally.found += 1;
            if !placed {
                missed.push(format!("{} (found outside its sections)", f.fact.text));
            }
        } else {
            missed.push(f.fact.text.clone());
        }
        if placed {
            tally.placed += 1;
        }
        if let (Some(key), Some(report)) = (&f.fact.metric, f.fact.reports.first())
            && placed
        {
            tally.metric_facts += 1;
            let value = metrics
                .iter()
                .find(|(r, _)| r == report)
                .and_then(|(_, m)| key.split('.').try_fold(m, |v, k| v.get(k)))
                .and_then(Value::as_i64);
            if value.is_some_and(|v| v >= 1) {
                tally.metric_ok += 1;
            }
        }
    }
    Ok((tally, missed))
}

/// The quotes of one narrative pass with the id of the section each stands in.
pub fn sectioned_quotes(
    markdown: &str,
    pass: i16,
    sections: &[SectionInfo],
) -> Vec<(Option<String>, String)> {
    let (mut group, mut title): (Option<&str>, Option<&str>) = (None, None);
    let mut out = Vec::new();
    for line in markdown.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            title = Some(h.trim());
        } else if let Some(h) = line.strip_prefix("## ") {
            group = Some(h.trim());
            title = None;
        } else if line.starts_with("- «") {
            let id = sections
                .iter()
                .find(|s| {
                    s.pass == pass
                        && match (title, &s.group) {
                            (Some(t), Some(g)) => s.title == t && group == Some(g.as_str()),
                            (None, None) => group == Some(s.title.as_str()),
                            _ => false,
                        }
                })
                .map(|s| s.id.clone());
            for q in quotes::extract(line) {
                out.push((id.clone(), q));
            }
        }
    }
    out
}
