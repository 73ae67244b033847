//! Retrieval: do search and fast answers find the moment a fact was said?
//!
//! The evaluation set (`tests/eval/questions/*.toml`, format in `tests/eval/README.md`):
//! questions about synthesized design audits (one voice) and guest interviews (two voices) in
//! `infra/local/speech/dialogues/`, hotels, restaurants, spas and no particular venue in nine
//! cities; each question is answered by one turn of its script, and comes twice: as a user
//! would ask it, and as a paraphrase sharing no content word with that turn.
//!
//! Every script goes through the real analyze stage (offline report engine, real sentence
//! encoder, PostgreSQL): its turns as transcript segments with the synthesized times
//! (`<id>.turns.tsv` from `make_dialogues.py`, run for the missing ones) and roles (S1 the
//! employee, S2 the guest), its recording's metadata, one job per report type that fits. The
//! stage stores reports, report chunks and transcript windows as the pipeline does. Then every
//! question is searched (`common::search::Searcher`, exact scan of the stored chunks, 10 hits)
//! in each corpus mix (reports only, transcripts only, both) and mode (vector; hybrid: fused
//! with PostgreSQL full-text by reciprocal rank, the text side keeping chunks with every word,
//! `hyb-all`, or any word, `hyb-any`), and answered by the offline fast answer.
//!
//! A hit is **right** when it is of the question's recording and covers the answering turn: a
//! transcript window whose time span overlaps the turn's, or a report piece citing a segment
//! (through a quote) that overlaps it. Printed per mix and mode, for the questions and the
//! paraphrases: `hit@1`, `hit@5`, `MRR` (first right hit, 10 hits), and `rec@5` (a hit of the
//! right recording in the top 5, whatever it cites). For answers, with vector and with hybrid
//! search: `cites` (some statement was said in the turn, by its `said` moment, or is a report
//! line whose cited segments overlap the turn; either in the question's recording), `states`
//! (such a statement also holds one of the question's answer word sets, compared by Snowball
//! stems) and `not found`.
//!
//! The anchor is the corpus the system searched before transcripts were indexed: reports
//! only, vector.
//!
//! `VOX_BENCH_WINDOW=MIN,MAX,OVERLAP` (seconds) sets the transcript windows (default the
//! stage's); `VOX_BENCH_CLIPS=a,b` keeps the scripts whose ids contain one of those strings;
//! `VOX_BENCH_VERBOSE=1` lists the questions each mix misses at 5, and the answers citing no
//! right turn with what they stated; `VOX_BENCH_ANSWERS_ONLY=1` measures the answers only.
//! Beside the answers it prints the same answers not routed (configuration `all`) and how
//! often the answer's sources hold the right turn at all (the ceiling for picking lines).
//!
//! Run: `cargo bench -p vox-tests --bench retrieval` (PostgreSQL as for the tests; models:
//! `infra/local/models/prepare_embedding.sh`; speech: festival and sox)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use common::analysis::engines::OfflineReports;
use common::analysis::offline::OfflineEngine;
use common::analysis::stage::{Outcome, Settings, Stage};
use common::analysis::windows::WindowParams;
use common::db::analysis_job;
use common::db::transcription::{self, NewTranscription, Segment};
use common::embed::{EmbedConfig, Embedder, UseEmbedder};
use common::search::answer::{AnswerRequest, Answerer};
use common::search::{Corpus, Hit, HitKind, SearchRequest, Searcher, TextMatch};
use serde_json::json;
use vox_tests::TestDb;

#[path = "../eval/questions.rs"]
#[allow(dead_code)] // the eval test uses the rest
mod questions;

use questions::{Question, Script, load_questions, script, states};

/// The answering turn of a question in its recording.
struct Target {
    transcription_id: i64,
    start_ms: i64,
    end_ms: i64,
}

#[derive(Default, Clone, Copy)]
struct Score {
    n: usize,
    hit1: usize,
    hit5: usize,
    rr: f64,
    rec5: usize,
}

impl Score {
    fn add(&mut self, hits: &[Hit], t: &Target) -> Option<usize> {
        self.n += 1;
        let first = hits.iter().position(|h| right(h, t));
        if let Some(rank) = first {
            self.hit1 += usize::from(rank == 0);
            self.hit5 += usize::from(rank < 5);
            self.rr += 1.0 / (rank as f64 + 1.0);
        }
        self.rec5 += usize::from(
            hits.iter()
                .take(5)
                .any(|h| h.transcription_id == t.transcription_id),
        );
        first
    }

    fn line(&self) -> String {
        let n = self.n.max(1) as f64;
        format!(
            "{:>6.3} {:>6.3} {:>6.3} {:>6.3}",
            self.hit1 as f64 / n,
            self.hit5 as f64 / n,
            self.rr / n,
            self.rec5 as f64 / n
        )
    }
}

fn overlaps(a: (i64, i64), b: (i64, i64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Of the question's recording and covering its turn.
fn right(h: &Hit, t: &Target) -> bool {
    if h.transcription_id != t.transcription_id {
        return false;
    }
    let turn = (t.start_ms, t.end_ms);
    match h.kind {
        HitKind::Transcript => match (h.start_ms, h.end_ms) {
            (Some(s), Some(e)) => overlaps((s, e), turn),
            _ => false,
        },
        HitKind::Report => h
            .segments
            .iter()
            .any(|s| overlaps((s.start_ms, s.end_ms), turn)),
    }
}

fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let filter = std::env::var("VOX_BENCH_CLIPS").ok();
    let verbose = std::env::var("VOX_BENCH_VERBOSE").is_ok_and(|v| v != "0");
    let mut set: Vec<Question> = load_questions(&root)?;
    if let Some(f) = &filter {
        let wanted: Vec<&str> = f.split(',').map(str::trim).collect();
        set.retain(|q| wanted.iter().any(|w| q.clip.contains(w)));
    }
    if set.is_empty() {
        bail!("no questions (VOX_BENCH_CLIPS filters them all out?)");
    }
    let mut clips: Vec<String> = set.iter().map(|q| q.clip.clone()).collect();
    clips.dedup();
    let dialogues = vox_cache()?.join("speech/dialogues");
    let status = Command::new("python3")
        .arg(root.join("infra/local/speech/make_dialogues.py"))
        .args(&clips)
        .status()
        .context("running make_dialogues.py")?;
    if !status.success() {
        bail!("make_dialogues.py failed (festival and sox installed?)");
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(&root, &dialogues, &clips, &set, verbose))
}

async fn run(
    root: &Path,
    dialogues: &Path,
    clips: &[String],
    set: &[Question],
    verbose: bool,
) -> Result<()> {
    let db = TestDb::new().await?;
    let embedder: Arc<dyn Embedder> = Arc::new(
        UseEmbedder::load(&EmbedConfig::from_env()?)
            .context("embedding model (infra/local/models/prepare_embedding.sh)")?,
    );
    let engine = Arc::new(OfflineEngine::new(Arc::clone(&embedder))?);
    let mut settings = Settings::default();
    if let Ok(w) = std::env::var("VOX_BENCH_WINDOW") {
        let s: Vec<i64> = w
            .split(',')
            .map(|v| v.trim().parse::<i64>().map(|s| s * 1000))
            .collect::<Result<_, _>>()
            .with_context(|| format!("VOX_BENCH_WINDOW={w:?} is not MIN,MAX,OVERLAP seconds"))?;
        let [min_ms, max_ms, overlap_ms] = s[..] else {
            bail!("VOX_BENCH_WINDOW={w:?} is not MIN,MAX,OVERLAP seconds");
        };
        settings.windows = WindowParams {
            min_ms,
            max_ms,
            overlap_ms,
        };
    }
    println!("transcript windows: {:?}", settings.windows);
    let stage = Stage {
        pool: db.pool.clone(),
        engine: Arc::new(OfflineReports(engine)),
        embedder: Arc::clone(&embedder),
        index: None,
        settings,
        worker: "retrieval-bench".into(),
    };

    // Every recording through the analyze stage.
    let started = Instant::now();
    let mut turns_of: BTreeMap<String, (i64, Vec<(i64, i64)>)> = BTreeMap::new();
    let (mut reports, mut windows) = (0usize, 0usize);
    for (i, clip) in clips.iter().enumerate() {
        let s = script(root, clip)?;
        let segments = segments(&s, dialogues)?;
        let spans = segments.iter().map(|g| (g.start_ms, g.end_ms)).collect();
        let (transcription_id, jobs) = store(&db, &s, i, segments).await?;
        for job in &jobs {
            match stage.process(job).await? {
                Outcome::Analyzed {
                    audit_ids,
                    transcript_windows,
                    ..
                } => {
                    reports += audit_ids.len();
                    windows += transcript_windows;
                }
                other => bail!("{clip}: {} not analyzed: {other:?}", job.report_type),
            }
        }
        turns_of.insert(clip.clone(), (transcription_id, spans));
    }
    let kinds = |k: &str| {
        clips
            .iter()
            .filter(|c| script(root, c).is_ok_and(|s| s.kind() == k))
            .count()
    };
    println!(
        "{} recordings ({} audits, {} interviews), {} reports, {} transcript windows, analysed in {:.0} s; {} questions, each also paraphrased",
        clips.len(),
        kinds("audit"),
        kinds("interview"),
        reports,
        windows,
        started.elapsed().as_secs_f64(),
        set.len()
    );

    let searcher = Searcher::new(db.pool.clone(), Arc::clone(&embedder));
    let mut all_words = searcher.clone();
    all_words.settings.text_match = TextMatch::All;
    let mut any_words = searcher.clone();
    any_words.settings.text_match = TextMatch::Any;
    let answerer = Answerer::new(searcher.clone(), None);
    let mut hybrid_answerer = Answerer::new(any_words.clone(), None);
    hybrid_answerer.settings.hybrid = true;
    let mixes = [
        ("reports", Corpus::Reports),
        ("transcripts", Corpus::Transcripts),
        ("both", Corpus::Both),
    ];
    let modes = [
        ("vector", &searcher, false),
        ("hyb-all", &all_words, true),
        ("hyb-any", &any_words, true),
    ];
    let mut scores: BTreeMap<(usize, usize, bool), Score> = BTreeMap::new();
    let mut misses: BTreeMap<(usize, usize, bool), Vec<String>> = BTreeMap::new();
    // Per answer engine (vector search, hybrid): cites, states, not found.
    let mut answer_scores = [[0usize; 3]; 3];
    let mut answers = 0usize;
    let mut answer_misses: Vec<String> = Vec::new();
    let mut reachable = 0usize;
    let answers_only = std::env::var("VOX_BENCH_ANSWERS_ONLY").is_ok_and(|v| v != "0");
    let mut latencies = Vec::new();
    for q in set {
        let (transcription_id, spans) = &turns_of[&q.clip];
        let (start_ms, end_ms) = spans[q.turn - 1];
        let target = Target {
            transcription_id: *transcription_id,
            start_ms,
            end_ms,
        };
        for (paraphrase, text) in [(false, &q.text), (true, &q.paraphrase)] {
            let vector = searcher
                .embed(vec![text.clone()])
                .await?
                .pop()
                .context("no vector")?;
            for (m, (_, corpus)) in mixes.iter().enumerate() {
                for (mode, (_, searcher, hybrid)) in modes.iter().enumerate() {
                    if answers_only {
                        continue;
                    }
                    let mut request = SearchRequest::new(text.as_str());
                    request.corpus = Some(*corpus);
                    request.hybrid = *hybrid;
                    let t = Instant::now();
                    let results = searcher.search_vector(None, &request, &vector).await?;
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                    let first = scores
                        .entry((m, mode, paraphrase))
                        .or_default()
                        .add(&results.hits, &target);
                    if first.is_none_or(|r| r >= 5) {
                        misses
                            .entry((m, mode, paraphrase))
                            .or_default()
                            .push(format!("{} #{}: {text}", q.clip, q.turn));
                    }
                }
            }
            answers += 1;
            // Whether the offline answer's sources (20 hits, both corpora) hold the turn at all.
            let mut request = SearchRequest::new(text.as_str());
            request.corpus = Some(Corpus::Both);
            request.limit = answerer.settings.offline_sources;
            let results = searcher.search_vector(None, &request, &vector).await?;
            reachable += usize::from(results.hits.iter().any(|h| right(h, &target)));
            let engines = [
                (&answerer, None),
                (&hybrid_answerer, None),
                (&answerer, Some("all")),
            ];
            for (e, (engine, config)) in engines.into_iter().enumerate() {
                let mut request = AnswerRequest::new(text.as_str());
                request.config = config.map(str::to_owned);
                let answer = engine.answer(None, &request).await?;
                let citing: Vec<_> = answer
                    .statements
                    .iter()
                    .filter(|s| {
                        let cited = |h: &&Hit| s.sources.contains(&h.rank);
                        match &s.said {
                            // Said in the turn, in the question's recording.
                            Some(m) => {
                                overlaps((m.start_ms, m.end_ms), (start_ms, end_ms))
                                    && answer
                                        .sources
                                        .iter()
                                        .filter(cited)
                                        .any(|h| h.transcription_id == *transcription_id)
                            }
                            // A report line quoting the turn.
                            None => answer
                                .sources
                                .iter()
                                .filter(cited)
                                .any(|h| h.kind == HitKind::Report && right(h, &target)),
                        }
                    })
                    .collect();
                if verbose && e == 0 && citing.is_empty() {
                    let s = script(root, &q.clip)?;
                    answer_misses.push(format!(
                        "{} #{}: {text}\n    said: {}\n{}",
                        q.clip,
                        q.turn,
                        s.turns[q.turn - 1].1,
                        answer
                            .statements
                            .iter()
                            .map(|s| format!("    stated: {}", s.text))
                            .collect::<Vec<_>>()
                            .join("\n")
                    ));
                }
                answer_scores[e][0] += usize::from(!citing.is_empty());
                answer_scores[e][1] +=
                    usize::from(citing.iter().any(|s| states(&q.answer, &s.text)));
                answer_scores[e][2] += usize::from(!answer.found);
            }
        }
    }

    println!();
    println!(
        "{:<12} {:<7} | {:<27} | {:<27}",
        "", "", "questions", "paraphrases"
    );
    let head = format!("{:>6} {:>6} {:>6} {:>6}", "hit@1", "hit@5", "MRR", "rec@5");
    println!("{:<12} {:<7} | {head} | {head}", "corpus", "mode");
    for (m, (name, _)) in mixes.iter().enumerate().filter(|_| !answers_only) {
        for (k, (mode, _, _)) in modes.iter().enumerate() {
            let anchor = if m == 0 && k == 0 { "  <- anchor" } else { "" };
            println!(
                "{name:<12} {mode:<7} | {} | {}{anchor}",
                scores[&(m, k, false)].line(),
                scores[&(m, k, true)].line()
            );
        }
    }
    let n = answers.max(1) as f64;
    println!();
    for (e, name) in [
        "vector search",
        "hybrid search (any word)",
        "vector search, not routed (config all)",
    ]
    .iter()
    .enumerate()
    {
        let [cites, stated, not_found] = answer_scores[e];
        println!(
            "fast answers (offline, both corpora, {name}; {answers} questions and paraphrases): cite the right recording and turn {:.3}, and state the fact {:.3}; not found {:.3}",
            cites as f64 / n,
            stated as f64 / n,
            not_found as f64 / n
        );
    }
    println!(
        "the offline answer's sources ({} hits, both corpora, vector search) hold the right turn for {:.3}",
        answerer.settings.offline_sources,
        reachable as f64 / n
    );
    latencies.sort_by(f64::total_cmp);
    if !latencies.is_empty() {
        let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        println!(
            "search latency (exact scan, {} searches): p50 {:.1} ms, p95 {:.1} ms",
            latencies.len(),
            p(0.5),
            p(0.95)
        );
    }
    if verbose {
        println!();
        println!("fast answers (vector search) citing no right turn:");
        for m in &answer_misses {
            println!("  {m}");
        }
        for ((m, mode, paraphrase), list) in &misses {
            println!();
            println!(
                "missed at 5: {} {} {}",
                mixes[*m].0,
                modes[*mode].0,
                if *paraphrase {
                    "paraphrases"
                } else {
                    "questions"
                }
            );
            for l in list {
                println!("  {l}");
            }
        }
    }
    Ok(())
}

/// The script's turns as segments, with the synthesized times and the speakers' roles.
fn segments(s: &Script, dialogues: &Path) -> Result<Vec<Segment>> {
    let path = dialogues.join(format!("{}.turns.tsv", s.id));
    let tsv = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let times: Vec<(i64, i64)> = tsv
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect();
    if times.len() != s.turns.len() {
        bail!(
            "{}: {} turns in the script, {} in {}",
            s.id,
            s.turns.len(),
            times.len(),
            path.display()
        );
    }
    s.turns
        .iter()
        .zip(times)
        .map(|((speaker, said), (start, end))| {
            let role = if speaker == "S1" {
                "Сотрудник"
            } else {
                "Клиент"
            };
            Ok(serde_json::from_value(json!({
                "start_ms": start, "end_ms": end, "text": said, "speaker": role
            }))?)
        })
        .collect()
}

/// A recording with its metadata and transcript, and the jobs of every report type that fits.
async fn store(
    db: &TestDb,
    s: &Script,
    i: usize,
    segments: Vec<Segment>,
) -> Result<(i64, Vec<analysis_job::JobMessage>)> {
    let conn = db.pool.get().await?;
    let scenario = if s.kind() == "audit" {
        "design"
    } else {
        "interview"
    };
    let building = s.building();
    let mut metadata = json!({
        "scenario": scenario,
        "city": s.city(),
        "employee": "Анна Смирнова",
        "date": format!("2026-{:02}-{:02}", 1 + i % 12, 1 + i % 28),
    });
    if building != "non-building" {
        metadata["building"] = json!(building);
        metadata["place"] = json!(format!("{} {}", building, s.city()));
    }
    let recording_id: i64 = conn
        .query_one(
            "INSERT INTO recording (bucket, object_key, etag, status, metadata)
             VALUES ('eval', $1, 'e', 'transcribed', $2) RETURNING recording_id",
            &[&format!("{}.wav", s.id), &metadata],
        )
        .await?
        .get(0);
    let audio_seconds = segments.last().map_or(0.0, |g| g.end_ms as f64 / 1000.0);
    let (transcription_id, _) = transcription::get_or_create(
        &conn,
        &NewTranscription {
            text: transcription::text_of(&segments),
            audio_file_name: format!("{}.wav", s.id),
            number_audio: None,
            recording_id: Some(recording_id),
            language: Some("ru".into()),
            audio_seconds: Some(audio_seconds),
            model_id: Some("script".into()),
            date: None,
            segments,
            coverage: None,
            speakers: None,
        },
    )
    .await?;
    let jobs = analysis_job::create_for_transcription(
        &conn,
        Some(recording_id),
        transcription_id,
        scenario,
        building,
        &[],
    )
    .await?;
    Ok((transcription_id, jobs))
}

fn vox_cache() -> Result<PathBuf> {
    if let Some(c) = std::env::var_os("VOX_CACHE") {
        return Ok(PathBuf::from(c));
    }
    let home = std::env::var_os("HOME").context("set VOX_CACHE or HOME")?;
    Ok(PathBuf::from(home).join(".cache/voxpersona"))
}
