//! The transcribe stage end to end: an object put into the emulated bucket, its notification
//! from the queue, the real speech engine, rows in PostgreSQL, jobs on the analyze queue.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::db::analysis_job::JobMessage;
use common::speech::{EngineSettings, WhisperEngine};
use common::transcribe::{Outcome, Settings, SpeechEngine, Stage};
use serde_json::json;
use vox_tests::TestDb;
use vox_tests::aws::LocalAws;

fn engine() -> Arc<dyn SpeechEngine> {
    static ENGINE: OnceLock<Arc<WhisperEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let settings = EngineSettings::from_env().unwrap();
            Arc::new(
                WhisperEngine::load(&settings)
                    .expect("models prepared by infra/local/models/prepare.sh"),
            )
        })
        .clone()
}

pub(crate) fn clip(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap())
        .join(".cache/voxpersona/speech")
        .join(name)
}

pub(crate) fn stage(db: &TestDb, aws: &LocalAws, worker: &str) -> Stage {
    Stage {
        pool: db.pool.clone(),
        s3: aws.s3.clone(),
        analyze: aws.analyze.clone(),
        engine: engine(),
        settings: Settings {
            max_bytes: 50_000_000,
            lease: Duration::from_secs(300),
            max_attempts: 3,
            default_language: Some("ru".into()),
            tmp_dir: std::env::temp_dir(),
            safety_margin: Duration::from_secs(5),
            diarize: Default::default(),
        },
        worker: worker.into(),
    }
}

fn design_metadata() -> HashMap<String, String> {
    HashMap::from([
        ("scenario".into(), "design".into()),
        ("building".into(), "hotel".into()),
        ("employee".into(), "%D0%90%D0%BD%D0%BD%D0%B0".into()),
        ("date".into(), "2026-03-14".into()),
    ])
}

/// The SQS event Lambda would get for the messages waiting on the transcribe queue.
pub(crate) async fn sqs_event(aws: &LocalAws) -> serde_json::Value {
    let bodies = aws.drain(&aws.transcribe, 20).await.unwrap();
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| json!({"messageId": format!("m{i}"), "body": body, "eventSource": "aws:sqs"}))
        .collect();
    json!({ "Records": records })
}

pub(crate) fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(900)
}

#[tokio::test]
async fn an_upload_becomes_a_transcript_with_segments_and_queued_analysis_jobs() {
    let (aws, db) = (LocalAws::new().await.unwrap(), TestDb::new().await.unwrap());
    let stage = stage(&db, &aws, "w1");
    aws.s3
        .put_file(
            &aws.bucket,
            "аудит/запись 6.ogg",
            &clip("ru_06.ogg"),
            "audio/ogg",
            &design_metadata(),
        )
        .await
        .unwrap();

    let event = transcribe::Invocation::from_json(sqs_event(&aws).await).unwrap();
    let response = transcribe::handle(&stage, &Default::default(), event, deadline())
        .await
        .unwrap();

    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    let conn = db.pool.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT t.transcription_text, t.language, t.model_id, r.status, r.metadata,
                    (SELECT count(*) FROM transcription_segment s WHERE s.transcription_id = t.transcription_id),
                    (SELECT count(*) FROM transcription_window w WHERE w.recording_id = r.recording_id)
             FROM transcription t JOIN recording r ON r.recording_id = t.recording_id",
            &[],
        )
        .await
        .unwrap();
    let (text, language, model, status): (String, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let metadata: serde_json::Value = row.get(4);
    let (segments, windows_left): (i64, i64) = (row.get(5), row.get(6));
    assert!(text.to_lowercase().contains("отель"), "{text}");
    assert_eq!((language.as_str(), status.as_str()), ("ru", "transcribed"));
    assert!(model.starts_with("whisper-"), "{model}");
    assert_eq!(metadata["employee"], "Анна");
    assert!(segments >= 1);
    assert_eq!(windows_left, 0, "saved windows are cleared with the commit");
    let recording_id: i64 = conn
        .query_one("SELECT recording_id FROM transcription", &[])
        .await
        .unwrap()
        .get(0);
    let coverage = common::db::recording::get(&conn, recording_id)
        .await
        .unwrap()
        .and_then(|r| r.speech_coverage)
        .expect("the coverage of the local engine is stored");
    assert!(coverage.speech_ms > 5_000, "{coverage:?}");
    assert_eq!((coverage.uncovered_ms, coverage.coverage), (0, 1.0));

    let messages = aws.drain(&aws.analyze, 10).await.unwrap();
    let mut jobs: Vec<JobMessage> = messages
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    jobs.sort_by_key(|j| j.analysis_job_id);
    let kinds: Vec<(&str, &str)> = jobs
        .iter()
        .map(|j| (j.report_type.as_str(), j.building.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("audit-methodology", "non-building"),
            ("audit-compliance", "hotel"),
            ("structured-audit", "hotel")
        ]
    );
}

#[tokio::test]
async fn a_repeated_notification_and_a_racing_worker_leave_one_transcription() {
    let (aws, db) = (LocalAws::new().await.unwrap(), TestDb::new().await.unwrap());
    let (a, b) = (stage(&db, &aws, "a"), stage(&db, &aws, "b"));
    aws.s3
        .put_file(
            &aws.bucket,
            "race.ogg",
            &clip("ru_01.ogg"),
            "audio/ogg",
            &design_metadata(),
        )
        .await
        .unwrap();
    let bodies = aws.drain(&aws.transcribe, 10).await.unwrap();
    let objects: Vec<_> = bodies
        .iter()
        .filter_map(|b| match common::events::parse_notification(b).unwrap() {
            common::events::Notification::Objects(o) => Some(o),
            common::events::Notification::Test => None,
        })
        .flatten()
        .collect();
    let object = &objects[0];

    let (ra, rb) = tokio::join!(a.process(object, deadline()), b.process(object, deadline()));
    let again = a.process(object, deadline()).await.unwrap();

    let outcomes = [ra, rb];
    let transcribed = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Outcome::Transcribed { .. })))
        .count();
    let busy = outcomes
        .iter()
        .filter(|o| matches!(o, Err(common::Error::Busy { .. })))
        .count();
    assert_eq!((transcribed, busy), (1, 1), "{outcomes:?}");
    // The repeat re-sends the unfinished jobs: harmless, their ids are the same.
    assert!(
        matches!(again, Outcome::AlreadyDone { resent: 3, .. }),
        "{again:?}"
    );
    let conn = db.pool.get().await.unwrap();
    let n: i64 = conn
        .query_one("SELECT count(*) FROM transcription", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let jobs: i64 = conn
        .query_one("SELECT count(*) FROM analysis_job", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs, 3);
}

#[tokio::test]
async fn broken_files_in_a_batch_are_failed_with_reasons_and_do_not_fail_their_neighbours() {
    let (aws, db) = (LocalAws::new().await.unwrap(), TestDb::new().await.unwrap());
    let stage = stage(&db, &aws, "w");
    let files = [
        ("good.ogg", "ru_03.ogg"),
        ("text.ogg", "not_audio.ogg"),
        ("empty.wav", "empty.wav"),
        ("cut.mp3", "truncated.mp3"),
    ];
    for (key, file) in files {
        aws.s3
            .put_file(
                &aws.bucket,
                key,
                &clip(file),
                "audio/ogg",
                &design_metadata(),
            )
            .await
            .unwrap();
    }
    let mut event = sqs_event(&aws).await;
    // And one message that is not an S3 notification at all.
    event["Records"]
        .as_array_mut()
        .unwrap()
        .push(json!({"messageId": "junk", "body": "not json", "eventSource": "aws:sqs"}));

    let response = transcribe::handle(
        &stage,
        &Default::default(),
        transcribe::Invocation::from_json(event).unwrap(),
        deadline(),
    )
    .await
    .unwrap();

    // Only the malformed message comes back (for the dead-letter queue); bad files are
    // recorded as failed and not retried.
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "junk"}]),
        "{response}"
    );
    let conn = db.pool.get().await.unwrap();
    let rows = conn
        .query("SELECT object_key, status, coalesce(last_error, '') FROM recording ORDER BY object_key", &[])
        .await
        .unwrap();
    let states: HashMap<String, (String, String)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    assert_eq!(states["good.ogg"].0, "transcribed");
    assert_eq!(states["text.ogg"].0, "failed");
    assert!(
        states["text.ogg"].1.contains("not audio"),
        "{:?}",
        states["text.ogg"]
    );
    assert_eq!(states["empty.wav"].0, "failed");
    assert!(
        states["empty.wav"].1.contains("empty"),
        "{:?}",
        states["empty.wav"]
    );
    assert_eq!(states["cut.mp3"].0, "failed");
    assert!(
        states["cut.mp3"].1.contains("truncated"),
        "{:?}",
        states["cut.mp3"]
    );
}

/// A PCM WAV whose 44-byte header declares `rate` Hz, with a little audio after it.
fn wav_declaring_rate(rate: u32) -> Vec<u8> {
    let data: Vec<u8> = (0..32_000u32).map(|i| (i * 37 % 251) as u8).collect();
    let mut b = Vec::with_capacity(44 + data.len());
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&rate.wrapping_mul(2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&data);
    b
}

/// Issue 14, item 4: a WAV declaring 2^31-1 Hz aborted the worker (8.6 GB for the
/// resampler) and took its batch with it; one declaring 0 Hz ended `done` with an empty
/// transcript. Both fail with the header's lie named, and their neighbour is transcribed.
#[tokio::test]
async fn wav_headers_declaring_impossible_rates_fail_their_recording_and_not_the_batch() {
    use aws_sdk_s3::primitives::ByteStream;
    let (aws, db) = (LocalAws::new().await.unwrap(), TestDb::new().await.unwrap());
    let stage = stage(&db, &aws, "w");
    aws.s3
        .put_file(
            &aws.bucket,
            "good.ogg",
            &clip("ru_03.ogg"),
            "audio/ogg",
            &design_metadata(),
        )
        .await
        .unwrap();
    for (key, rate) in [("huge-rate.wav", 2_147_483_647), ("zero-rate.wav", 0)] {
        aws.s3
            .put(
                &aws.bucket,
                key,
                ByteStream::from(wav_declaring_rate(rate)),
                "audio/wav",
                &design_metadata(),
            )
            .await
            .unwrap();
    }

    let response = transcribe::handle(
        &stage,
        &Default::default(),
        transcribe::Invocation::from_json(sqs_event(&aws).await).unwrap(),
        deadline(),
    )
    .await
    .unwrap();

    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    let conn = db.pool.get().await.unwrap();
    let rows = conn
        .query(
            "SELECT object_key, status, coalesce(last_error, '') FROM recording ORDER BY object_key",
            &[],
        )
        .await
        .unwrap();
    let states: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        states,
        [
            ("good.ogg".into(), "transcribed".into(), String::new()),
            (
                "huge-rate.wav".into(),
                "failed".into(),
                "the recording cannot be transcribed: the WAV header declares a sample rate of \
                 2147483647 Hz; expected 1000-384000 Hz"
                    .into()
            ),
            (
                "zero-rate.wav".into(),
                "failed".into(),
                "the recording cannot be transcribed: the WAV header declares a sample rate of 0 Hz; \
                 expected 1000-384000 Hz"
                    .into()
            ),
        ]
    );
}

#[tokio::test]
async fn malformed_object_metadata_fails_the_recording_naming_the_field() {
    let (aws, db) = (LocalAws::new().await.unwrap(), TestDb::new().await.unwrap());
    let stage = stage(&db, &aws, "w");
    let mut meta = design_metadata();
    meta.insert("date".into(), "14.03.2026".into());
    aws.s3
        .put_file(
            &aws.bucket,
            "bad-date.ogg",
            &clip("ru_02.ogg"),
            "audio/ogg",
            &meta,
        )
        .await
        .unwrap();

    let event = transcribe::Invocation::from_json(sqs_event(&aws).await).unwrap();
    transcribe::handle(&stage, &Default::default(), event, deadline())
        .await
        .unwrap();

    let conn = db.pool.get().await.unwrap();
    let row = conn
        .query_one("SELECT status, last_error FROM recording", &[])
        .await
        .unwrap();
    let (status, error): (String, String) = (row.get(0), row.get(1));
    assert_eq!(status, "failed");
    assert!(
        error.contains("date") && error.contains("14.03.2026"),
        "{error}"
    );
}

#[tokio::test]
async fn speech_the_engine_cannot_transcribe_is_stored_as_uncovered_and_the_recording_says_so() {
    // A recognizer whose guard no text passes: every window is heard, decoded, decoded again
    // stretch by stretch, and nothing comes out.
    let (aws, db) = (LocalAws::new().await.unwrap(), TestDb::new().await.unwrap());
    let settings = EngineSettings::from_env().unwrap();
    let mut config = common::asr::AsrConfig::new(&settings.models_dir);
    config.guard.min_avg_logprob = 0.0;
    config.decode.temperatures = vec![0.0];
    let mut stage = stage(&db, &aws, "strict");
    stage.engine = Arc::new(WhisperEngine::from_config(config).expect("models are prepared"));
    aws.s3
        .put_file(
            &aws.bucket,
            "interviews/kazan.wav",
            &clip("dialogues/ru_int_hotel_kazan_short.wav"),
            "audio/wav",
            &design_metadata(),
        )
        .await
        .unwrap();

    let event = transcribe::Invocation::from_json(sqs_event(&aws).await).unwrap();
    let response = transcribe::handle(&stage, &Default::default(), event, deadline())
        .await
        .unwrap();

    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    let conn = db.pool.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT recording_id, transcription_text, speech_ms, uncovered_ms FROM transcription",
            &[],
        )
        .await
        .unwrap();
    let (recording_id, text, speech_ms, uncovered_ms): (i64, String, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(text, "");
    // The clip has 23.7 s of speech in three turns (0.5-6.2 s, 7.1-20.0 s, 20.2-25.3 s).
    assert!(speech_ms > 20_000, "{speech_ms}");
    assert!(
        uncovered_ms * 10 >= speech_ms * 9,
        "{uncovered_ms} of {speech_ms}"
    );
    let recording = common::db::recording::get(&conn, recording_id)
        .await
        .unwrap()
        .unwrap();
    let coverage = recording
        .speech_coverage
        .expect("coverage shown with the recording");
    assert!(coverage.coverage < 0.1, "{coverage:?}");
    assert!(
        coverage
            .uncovered
            .iter()
            .any(|u| u.start_ms <= 8_000 && u.end_ms >= 19_000),
        "the guest's turn is reported: {:?}",
        coverage.uncovered
    );
}

#[tokio::test]
async fn an_interview_is_stored_with_its_speakers_and_the_roles_their_turns_show() {
    // Two voices (the second pitch-shifted), six turns 0.3 s apart: the interviewer (S1)
    // asks, the guest (S2) answers.
    let (aws, db) = (LocalAws::new().await.unwrap(), TestDb::new().await.unwrap());
    let stage = stage(&db, &aws, "speakers");
    let mut metadata = design_metadata();
    metadata.insert("scenario".into(), "interview".into());
    aws.s3
        .put_file(
            &aws.bucket,
            "interviews/nn.wav",
            &clip("dialogues/ru_int_gap03.wav"),
            "audio/wav",
            &metadata,
        )
        .await
        .unwrap();

    let event = transcribe::Invocation::from_json(sqs_event(&aws).await).unwrap();
    let response = transcribe::handle(&stage, &Default::default(), event, deadline())
        .await
        .unwrap();
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");

    let conn = db.pool.get().await.unwrap();
    let id: i64 = conn
        .query_one("SELECT transcription_id FROM transcription", &[])
        .await
        .unwrap()
        .get(0);
    let t = common::db::transcription::get(&conn, id)
        .await
        .unwrap()
        .unwrap();
    let speakers = t.speakers.expect("speakers stored with the transcript");
    assert_eq!(speakers.len(), 2, "{speakers:?}");
    assert_eq!(
        speakers.iter().filter_map(|s| s.role).collect::<Vec<_>>(),
        vec![
            common::speakers::Role::Employee,
            common::speakers::Role::Client
        ],
        "the interviewer speaks first and asks: {speakers:?}"
    );
    // Every segment has a speaker and a role; the turns are where the script put them.
    let tsv = std::fs::read_to_string(clip("dialogues/ru_int_gap03.turns.tsv")).unwrap();
    let turns: Vec<(i64, i64, &str)> = tsv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.splitn(5, '\t').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[3])
        })
        .collect();
    let mut right = 0;
    for s in &t.segments {
        assert!(s.speaker_id.is_some() && s.speaker.is_some(), "{s:?}");
        assert!(s.voice.is_none(), "voiceprints are not kept: {s:?}");
        let mid = (s.start_ms + s.end_ms) / 2;
        let truth = turns
            .iter()
            .min_by_key(|(a, b, _)| (mid - (a + b) / 2).abs())
            .map(|t| {
                if t.2 == "employee" {
                    "Сотрудник"
                } else {
                    "Клиент"
                }
            });
        right += usize::from(s.speaker.as_deref() == truth);
    }
    assert!(
        right * 10 >= t.segments.len() * 8,
        "{right} of {} segments have their turn's role: {:?}",
        t.segments.len(),
        t.segments
    );
    // Stored as they are read: the segments' speaker ids come back in the API's order.
    let ids: Vec<Option<i16>> = conn
        .query(
            "SELECT speaker_id FROM transcription_segment WHERE transcription_id = $1 ORDER BY seq",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        ids.first(),
        Some(&Some(0)),
        "the first to speak is speaker 0"
    );
    assert!(ids.contains(&Some(1)));
}

/// A notification for an object overwritten before it was handled reads nothing of the newer
/// file: its recording fails as superseded, and the newer upload, with its own notification,
/// is transcribed under its own row (issue 14, item 5).
#[tokio::test]
async fn an_overwritten_upload_is_failed_as_superseded_and_the_newer_one_transcribed() {
    let (aws, db) = (LocalAws::new().await.unwrap(), TestDb::new().await.unwrap());
    let stage = stage(&db, &aws, "w");
    for clip_name in ["ru_02.ogg", "ru_03.ogg"] {
        aws.s3
            .put_file(
                &aws.bucket,
                "audits/same-key.ogg",
                &clip(clip_name),
                "audio/ogg",
                &design_metadata(),
            )
            .await
            .unwrap();
    }
    let newest = aws
        .s3
        .head(&aws.bucket, "audits/same-key.ogg")
        .await
        .unwrap();

    let event = transcribe::Invocation::from_json(sqs_event(&aws).await).unwrap();
    transcribe::handle(&stage, &Default::default(), event, deadline())
        .await
        .unwrap();

    let conn = db.pool.get().await.unwrap();
    let rows = conn
        .query(
            "SELECT r.etag, r.status, coalesce(r.last_error, ''), count(t.transcription_id)
             FROM recording r LEFT JOIN transcription t USING (recording_id)
             GROUP BY r.recording_id ORDER BY r.recording_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "one recording per notified version");
    let (old_etag, status, reason, transcripts): (String, String, String, i64) = (
        rows[0].get(0),
        rows[0].get(1),
        rows[0].get(2),
        rows[0].get(3),
    );
    assert_ne!(old_etag, newest.etag);
    assert_eq!((status.as_str(), transcripts), ("failed", 0));
    assert!(reason.starts_with("superseded"), "{reason}");
    assert!(reason.contains(&old_etag), "{reason}");
    let (etag, status, transcripts): (String, String, i64) =
        (rows[1].get(0), rows[1].get(1), rows[1].get(3));
    assert_eq!(
        (etag, status.as_str(), transcripts),
        (newest.etag, "transcribed", 1)
    );
}

/// A recording that failed, uploaded again with its metadata fixed, is processed again; a
/// redelivery of the first notification is not a re-upload and changes nothing (issue 14,
/// item 6).
#[tokio::test]
async fn a_failed_recording_uploaded_again_is_processed_again() {
    let (aws, db) = (LocalAws::new().await.unwrap(), TestDb::new().await.unwrap());
    let stage = stage(&db, &aws, "w");
    let mut meta = design_metadata();
    meta.insert("date".into(), "14.03.2026".into());
    aws.s3
        .put_file(
            &aws.bucket,
            "again.ogg",
            &clip("ru_02.ogg"),
            "audio/ogg",
            &meta,
        )
        .await
        .unwrap();
    let first = sqs_event(&aws).await;
    let handle = |event: serde_json::Value| {
        let stage = &stage;
        async move {
            let event = transcribe::Invocation::from_json(event).unwrap();
            transcribe::handle(stage, &Default::default(), event, deadline())
                .await
                .unwrap()
        }
    };
    handle(first.clone()).await;
    let conn = db.pool.get().await.unwrap();
    let state = || async {
        let row = conn
            .query_one(
                "SELECT recording_id, status, coalesce(last_error, ''), metadata->>'date'
                 FROM recording",
                &[],
            )
            .await
            .unwrap();
        let state: (i64, String, String, Option<String>) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        state
    };
    let (id, status, reason, _) = state().await;
    assert_eq!(status, "failed");
    assert!(reason.contains("14.03.2026"), "{reason}");

    // The first notification again: still failed, with the same reason.
    handle(first).await;
    assert_eq!(state().await, (id, status, reason, None));

    // The same bytes uploaded again with the date fixed: the same object version (key and
    // ETag), processed again under its row, with the new metadata.
    aws.s3
        .put_file(
            &aws.bucket,
            "again.ogg",
            &clip("ru_02.ogg"),
            "audio/ogg",
            &design_metadata(),
        )
        .await
        .unwrap();
    handle(sqs_event(&aws).await).await;
    let (again, status, reason, date) = state().await;
    assert_eq!(again, id, "one recording per object version");
    assert_eq!((status.as_str(), reason.as_str()), ("transcribed", ""));
    assert_eq!(date.as_deref(), Some("2026-03-14"));
    let transcripts: i64 = conn
        .query_one("SELECT count(*) FROM transcription", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(transcripts, 1);
}
