//! The analyze stage end to end against a real PostgreSQL, with the offline engine and the
//! real sentence encoder: every valid (report type, building) stores its reports, `user_road`
//! and chunks; a repeated job leaves one set of rows; a fault before the commit leaves
//! nothing; a batch reports only its bad messages.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use analyze::handle_sqs;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use common::analysis::catalog::{Catalog, PromptKind};
use common::analysis::engines::OfflineReports;
use common::analysis::offline::OfflineEngine;
use common::analysis::stage::{Outcome, Settings, Stage, StageStep};
use common::db::analysis_job::{self, JobMessage};
use common::db::transcription::{self, NewTranscription, Segment};
use common::embed::{EmbedConfig, Embedder, UseEmbedder};
use serde_json::json;
use vox_tests::{TestDb, row_counts};

fn models_dir() -> PathBuf {
    std::env::var_os("VOX_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/voxpersona/models")
        })
}

/// One encoder and one engine for every test of the binary (loading takes seconds).
pub(crate) fn engines() -> (Arc<dyn Embedder>, Arc<OfflineEngine>) {
    static E: OnceLock<(Arc<dyn Embedder>, Arc<OfflineEngine>)> = OnceLock::new();
    E.get_or_init(|| {
        let embedder: Arc<dyn Embedder> = Arc::new(
            UseEmbedder::load(&EmbedConfig::new(models_dir()))
                .expect("embedding model is prepared (infra/local/models/prepare_embedding.sh)"),
        );
        let engine = OfflineEngine::new(Arc::clone(&embedder)).expect("offline engine");
        (embedder, Arc::new(engine))
    })
    .clone()
}

pub(crate) fn stage(db: &TestDb) -> Stage {
    let (embedder, engine) = engines();
    Stage {
        pool: db.pool.clone(),
        engine: Arc::new(OfflineReports(engine)),
        embedder,
        index: None,
        settings: Settings::default(),
        worker: "test-worker".into(),
    }
}

fn speech_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/local/speech")
}

/// Segments of a festival text: one per sentence, with made-up times.
fn segments(scenario: &str) -> Vec<Segment> {
    let text = if scenario == "interview" {
        std::fs::read_to_string(speech_dir().join("interview_ru.txt")).unwrap()
    } else {
        let mut all = String::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(speech_dir().join("texts"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("ru_") && n.ends_with(".txt"))
            })
            .collect();
        files.sort();
        for f in files {
            all.push_str(&std::fs::read_to_string(f).unwrap());
            all.push('\n');
        }
        all
    };
    let mut at = 0;
    text.split_inclusive(['.', '?', '!', '\n'])
        .map(str::trim)
        .filter(|s| s.chars().any(char::is_alphabetic))
        .map(|s| {
            let len = 300 * s.split_whitespace().count() as i64 + 500;
            let seg = Segment {
                start_ms: at,
                end_ms: at + len,
                text: s.to_owned(),
                speaker: None,
                ..Default::default()
            };
            at += len + 400;
            seg
        })
        .collect()
}

/// A recording with metadata and its stored transcription; returns the job of
/// (report type, building).
pub(crate) async fn setup(
    db: &TestDb,
    scenario: &str,
    report_type: &str,
    building: &str,
) -> JobMessage {
    setup_in(db, scenario, report_type, building, "Казань", "2026-03-14").await
}

/// [`setup`] for a recording made in `city` on `date` (YYYY-MM-DD).
pub(crate) async fn setup_in(
    db: &TestDb,
    scenario: &str,
    report_type: &str,
    building: &str,
    city: &str,
    date: &str,
) -> JobMessage {
    let conn = db.pool.get().await.unwrap();
    let place_building = if building == "non-building" {
        "hotel"
    } else {
        building
    };
    let metadata = json!({
        "scenario": scenario,
        "building": place_building,
        "employee": "Анна Смирнова",
        "place": "Гранд Отель",
        "city": city,
        "client": "Иван Петров",
        "zones": ["Лобби", "Номера"],
        "date": date,
        "number": 7,
    });
    let recording_id: i64 = conn
        .query_one(
            "INSERT INTO recording (bucket, object_key, etag, status, metadata)
             VALUES ('b', $1, 'e', 'transcribed', $2) RETURNING recording_id",
            &[
                &format!("{scenario}/{report_type}-{building}-{city}-{date}.ogg"),
                &metadata,
            ],
        )
        .await
        .unwrap()
        .get(0);
    let segs = segments(scenario);
    let (transcription_id, _) = transcription::get_or_create(
        &conn,
        &NewTranscription {
            text: transcription::text_of(&segs),
            audio_file_name: format!("{scenario}/{report_type}.ogg"),
            number_audio: Some(7),
            recording_id: Some(recording_id),
            language: Some("ru".into()),
            audio_seconds: Some(600.0),
            model_id: Some("whisper-base-int8".into()),
            date: None,
            segments: segs,
            coverage: None,
            speakers: None,
        },
    )
    .await
    .unwrap();
    let jobs = analysis_job::create_for_transcription(
        &conn,
        Some(recording_id),
        transcription_id,
        scenario,
        place_building,
        &[report_type.to_owned()],
    )
    .await
    .unwrap();
    jobs.into_iter()
        .find(|j| j.building == building)
        .expect("a job for the pair")
}

#[tokio::test]
async fn every_report_type_and_building_stores_reports_road_and_chunks() {
    let db = TestDb::new().await.unwrap();
    let stage = stage(&db);
    let catalog = Catalog::embedded().unwrap();
    let mut pairs: Vec<(String, String, String)> = catalog
        .prompts
        .iter()
        .filter(|p| p.kind != PromptKind::RoleLabelling)
        .flat_map(|p| {
            p.buildings
                .iter()
                .map(|b| (p.scenario.clone(), p.report_type.clone(), b.clone()))
        })
        .collect();
    pairs.sort();
    pairs.dedup();
    assert_eq!(pairs.len(), 15, "{pairs:?}");
    for (scenario, report_type, building) in &pairs {
        let job = setup(&db, scenario, report_type, building).await;
        let outcome = stage.process(&job).await.unwrap();
        let Outcome::Analyzed {
            audit_ids, chunks, ..
        } = &outcome
        else {
            panic!("{report_type}/{building}: {outcome:?}")
        };
        let passes = catalog.passes(report_type, building);
        assert_eq!(audit_ids.len(), passes.len(), "{report_type}/{building}");
        assert!(*chunks > 0, "{report_type}/{building}: no chunks");

        let conn = db.pool.get().await.unwrap();
        let rows = conn
            .query(
                "SELECT a.pass, a.kind, a.metrics, a.engine, a.unverified_quotes,
                        (SELECT count(*) FROM chunk c WHERE c.audit_id = a.audit_id),
                        e.employee_name, p.place_name, c.city_name, a.audit_date::text
                 FROM audit a
                 LEFT JOIN employee e ON e.employee_id = a.employee_id
                 LEFT JOIN place p ON p.place_id = a.place_id
                 LEFT JOIN city c ON c.city_id = a.city_id
                 WHERE a.analysis_job_id = $1 ORDER BY a.pass",
                &[&job.analysis_job_id],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), passes.len());
        for (row, spec) in rows.iter().zip(&passes) {
            assert_eq!(row.get::<_, i16>(0), spec.pass);
            let kind: String = row.get(1);
            let chunk_count: i64 = row.get(5);
            if spec.kind == PromptKind::Metrics {
                assert_eq!(kind, "metrics");
                let metrics: serde_json::Value = row.get(2);
                common::metrics::validate(report_type, building, &metrics).unwrap();
                assert_eq!(chunk_count, 0, "metric reports are not indexed");
            } else {
                assert_eq!(kind, "narrative");
                assert!(chunk_count > 0, "{}: no chunks", spec.name);
                // The offline engine only quotes the transcript.
                assert_eq!(row.get::<_, i32>(4), 0, "{}: unverified quotes", spec.name);
            }
            assert!(row.get::<_, String>(3).starts_with("offline:"));
            assert_eq!(
                row.get::<_, Option<String>>(6).as_deref(),
                Some("Анна Смирнова")
            );
            assert_eq!(
                row.get::<_, Option<String>>(7).as_deref(),
                Some("Гранд Отель")
            );
            assert_eq!(row.get::<_, Option<String>>(8).as_deref(), Some("Казань"));
            assert_eq!(row.get::<_, String>(9), "2026-03-14");
        }
        let road: i64 = conn
            .query_one(
                "SELECT count(*) FROM user_road u
                 JOIN report_type rt ON rt.report_type_id = u.report_type_id
                 JOIN buildings b ON b.building_id = u.building_id
                 WHERE rt.code = $1 AND b.code = $2",
                &[report_type, building],
            )
            .await
            .unwrap()
            .get(0);
        assert!(road >= 1, "{report_type}/{building}: no user_road row");
        let status: String = conn
            .query_one(
                "SELECT status FROM analysis_job WHERE analysis_job_id = $1",
                &[&job.analysis_job_id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(status, "done");
        // Chunks hold exact slices of their report, with the encoder's id and 512 dims.
        let bad: i64 = conn
            .query_one(
                "SELECT count(*) FROM chunk c JOIN audit a ON a.audit_id = c.audit_id
                 WHERE a.analysis_job_id = $1
                   AND (substr(a.audit, c.start_char + 1, c.end_char - c.start_char) <> c.text
                        OR c.dims <> 512 OR c.embedding_model NOT LIKE 'use-multilingual%')",
                &[&job.analysis_job_id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(bad, 0, "{report_type}/{building}: chunks do not match");
    }
}

#[tokio::test]
async fn a_repeated_job_leaves_one_set_of_rows_and_finishes_the_recording() {
    let db = TestDb::new().await.unwrap();
    let stage = stage(&db);
    let job = setup(&db, "design", "structured-audit", "hotel").await;
    let first = stage.process(&job).await.unwrap();
    assert!(matches!(first, Outcome::Analyzed { .. }), "{first:?}");
    let conn = db.pool.get().await.unwrap();
    let before = row_counts(&conn).await.unwrap();
    let second = stage.process(&job).await.unwrap();
    assert_eq!(
        second,
        Outcome::AlreadyDone {
            analysis_job_id: job.analysis_job_id
        }
    );
    assert_eq!(row_counts(&conn).await.unwrap(), before);
    let (status, error): (String, Option<String>) = conn
        .query_one(
            "SELECT status, last_error FROM recording WHERE recording_id = $1",
            &[&job.recording_id],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((status.as_str(), error), ("done", None));

    // Re-running the work after the job is reopened (e.g. a re-analysis) replaces the rows:
    // still one set, the same audit and chunk ids.
    conn.execute(
        "UPDATE analysis_job SET status = 'queued' WHERE analysis_job_id = $1",
        &[&job.analysis_job_id],
    )
    .await
    .unwrap();
    let chunk_ids = |rows: Vec<tokio_postgres::Row>| {
        rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>()
    };
    let before_ids = chunk_ids(
        conn.query("SELECT chunk_id FROM chunk ORDER BY 1", &[])
            .await
            .unwrap(),
    );
    let third = stage.process(&job).await.unwrap();
    assert!(matches!(third, Outcome::Analyzed { .. }), "{third:?}");
    assert_eq!(row_counts(&conn).await.unwrap(), before);
    let after_ids = chunk_ids(
        conn.query("SELECT chunk_id FROM chunk ORDER BY 1", &[])
            .await
            .unwrap(),
    );
    assert_eq!(before_ids, after_ids);
}

#[tokio::test]
async fn a_fault_before_the_commit_leaves_nothing_and_the_retry_succeeds() {
    let db = TestDb::new().await.unwrap();
    let stage = stage(&db);
    let job = setup(&db, "interview", "common-factors", "spa").await;
    let conn = db.pool.get().await.unwrap();
    let before = row_counts(&conn).await.unwrap();
    for step in [StageStep::Chunks, StageStep::JobDone] {
        let err = stage
            .process_with(&job, &|s| {
                if s == step {
                    Err(common::Error::Injected { step: "test" })
                } else {
                    Ok(())
                }
            })
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
        let mut after = row_counts(&conn).await.unwrap();
        // Only the job's bookkeeping (attempts, last error) may differ: no rows appear.
        after.remove("analysis_job");
        let mut expected = before.clone();
        expected.remove("analysis_job");
        assert_eq!(after, expected, "rows appeared after a fault at {step:?}");
        let (status, owner): (String, Option<String>) = conn
            .query_one(
                "SELECT status, lease_owner FROM analysis_job WHERE analysis_job_id = $1",
                &[&job.analysis_job_id],
            )
            .await
            .map(|r| (r.get(0), r.get(1)))
            .unwrap();
        assert_eq!(
            (status.as_str(), owner),
            ("queued", None),
            "the lease is given back"
        );
    }
    let outcome = stage.process(&job).await.unwrap();
    assert!(matches!(outcome, Outcome::Analyzed { .. }), "{outcome:?}");
}

#[tokio::test]
async fn a_batch_reports_only_its_bad_messages_and_unknown_jobs_fail_cleanly() {
    let db = TestDb::new().await.unwrap();
    let stage = stage(&db);
    let job = setup(&db, "design", "audit-methodology", "non-building").await;
    let message = |id: &str, body: String| {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body);
        m
    };
    let mut missing = job.clone();
    missing.analysis_job_id = 999_999;
    let mut event = SqsEvent::default();
    event.records = vec![
        message("good", serde_json::to_string(&job).unwrap()),
        message("garbage", "{\"not\": \"a job\"}".into()),
        message("missing", serde_json::to_string(&missing).unwrap()),
    ];
    let response = handle_sqs(&stage, event).await;
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec!["garbage".to_owned(), "missing".to_owned()]);
    let conn = db.pool.get().await.unwrap();
    let status: String = conn
        .query_one(
            "SELECT status FROM analysis_job WHERE analysis_job_id = $1",
            &[&job.analysis_job_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "done");
}

/// The database cuts every connection while a job's reports are being stored (as a failover
/// does): the stage tries again on fresh connections at once, in process, and the job ends
/// analyzed with one set of rows, instead of waiting for the queue to redeliver it.
#[tokio::test]
async fn connections_cut_during_the_commit_are_ridden_out_in_process() {
    let db = TestDb::new().await.unwrap();
    let stage = stage(&db);
    let job = setup(&db, "design", "audit-methodology", "non-building").await;
    let cuts = std::sync::atomic::AtomicU32::new(0);
    let name = db.name().to_owned();
    let outcome = stage
        .process_with(&job, &|step| {
            if step == StageStep::Chunks && cuts.fetch_add(1, Ordering::SeqCst) == 0 {
                let status = std::process::Command::new("psql")
                    .args([&vox_tests::admin_url(), "-Atqc"])
                    .arg(format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                    ))
                    .status()
                    .unwrap();
                assert!(status.success());
            }
            Ok(())
        })
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Analyzed { .. }), "{outcome:?}");
    assert_eq!(cuts.load(Ordering::SeqCst), 2, "stored on the second try");
    let conn = db.pool.get().await.unwrap();
    let (status, attempts): (String, i32) = conn
        .query_one(
            "SELECT status, attempts FROM analysis_job WHERE analysis_job_id = $1",
            &[&job.analysis_job_id],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((status.as_str(), attempts), ("done", 2));
    let audits: i64 = conn
        .query_one(
            "SELECT count(*) FROM audit WHERE analysis_job_id = $1",
            &[&job.analysis_job_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(audits > 0);
}
