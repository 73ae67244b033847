//! The sweeper (issue 14, item 1): recordings and jobs left in a non-final state without a
//! live lease go back to their queues, or fail once out of attempts with a reason naming
//! where their worker stopped; finished recordings are settled; a dry run changes nothing.

use std::time::Duration;

use common::db::analysis_job::{self, JobMessage};
use common::db::recording::{self, Claim, ObjectIdentity};
use common::db::transcription::{self, NewTranscription};
use common::events::{Notification, parse_notification};
use common::sweep::{SweepQueues, SweepSettings, sweep};
use vox_tests::TestDb;
use vox_tests::aws::LocalAws;

const DEAD: Duration = Duration::from_millis(1);

fn object(key: &str) -> ObjectIdentity {
    ObjectIdentity {
        bucket: "vox-recordings".into(),
        key: key.into(),
        etag: "0123abcd".into(),
        version_id: String::new(),
    }
}

/// A recording claimed by a worker that died at once (its lease already ran out).
async fn abandoned(db: &TestDb, key: &str) -> i64 {
    let conn = db.pool.get().await.unwrap();
    let Claim::Claimed { recording_id, .. } =
        recording::claim(&conn, &object(key), "dead", DEAD, 5)
            .await
            .unwrap()
    else {
        panic!("a new recording is claimed")
    };
    recording::report_progress(
        &conn,
        recording_id,
        "dead",
        "transcribing: 60 s done",
        0.2,
        DEAD,
    )
    .await
    .unwrap();
    recording_id
}

/// A transcribed recording with its three design jobs queued.
async fn transcribed(db: &TestDb, key: &str) -> (i64, Vec<JobMessage>) {
    let conn = db.pool.get().await.unwrap();
    let Claim::Claimed { recording_id, .. } =
        recording::claim(&conn, &object(key), "w", Duration::from_secs(60), 5)
            .await
            .unwrap()
    else {
        panic!("a new recording is claimed")
    };
    let new = NewTranscription {
        text: "Входная группа хорошо освещена.".into(),
        audio_file_name: key.into(),
        number_audio: None,
        recording_id: Some(recording_id),
        language: Some("ru".into()),
        audio_seconds: Some(4.2),
        model_id: None,
        date: None,
        segments: Vec::new(),
        coverage: None,
        speakers: None,
    };
    let (t, _) = transcription::get_or_create(&conn, &new).await.unwrap();
    recording::finish_transcription(&conn, recording_id, "w")
        .await
        .unwrap();
    let jobs = analysis_job::create_for_transcription(
        &conn,
        Some(recording_id),
        t,
        "design",
        "hotel",
        &[],
    )
    .await
    .unwrap();
    (recording_id, jobs)
}

async fn status(db: &TestDb, recording_id: i64) -> (String, Option<String>) {
    let conn = db.pool.get().await.unwrap();
    let row = recording::get(&conn, recording_id).await.unwrap().unwrap();
    (row.status, row.last_error)
}

#[tokio::test]
async fn stuck_work_is_requeued_failed_once_out_of_attempts_or_settled() {
    let (db, aws) = (TestDb::new().await.unwrap(), LocalAws::new().await.unwrap());
    // The notification configuration's s3:TestEvent.
    aws.drain(&aws.transcribe, 10).await.unwrap();
    let requeue = abandoned(&db, "recordings/a 1+ё.ogg").await;
    let exhausted = abandoned(&db, "recordings/b.ogg").await;
    let (queued, jobs) = transcribed(&db, "recordings/c.ogg").await;
    let (unsettled, done_jobs) = transcribed(&db, "recordings/d.ogg").await;
    {
        let conn = db.pool.get().await.unwrap();
        conn.execute(
            "UPDATE recording SET attempts = 5 WHERE recording_id = $1",
            &[&exhausted],
        )
        .await
        .unwrap();
        // One of c's jobs was claimed by a worker that died on its last attempt.
        analysis_job::claim(&conn, jobs[0].analysis_job_id, "dead", DEAD, 5)
            .await
            .unwrap();
        conn.execute(
            "UPDATE analysis_job SET attempts = 5 WHERE analysis_job_id = $1",
            &[&jobs[0].analysis_job_id],
        )
        .await
        .unwrap();
        // d's jobs all finished, but the recording was never settled.
        for job in &done_jobs {
            analysis_job::claim(&conn, job.analysis_job_id, "w", Duration::from_secs(60), 5)
                .await
                .unwrap();
            analysis_job::finish(&conn, job.analysis_job_id, "w", "offline")
                .await
                .unwrap();
        }
        conn.execute(
            "UPDATE recording SET status = 'analyzing', finished_at = NULL WHERE recording_id = $1",
            &[&unsettled],
        )
        .await
        .unwrap();
    }
    // Deep questions: one asked and never taken, one a worker died on two days ago.
    let conn = db.pool.get().await.unwrap();
    let (fresh_question, old_question): (i64, i64) = conn
        .query_one(
            "WITH a AS (INSERT INTO question_job (question) VALUES ('Что с освещением?')
                        RETURNING question_job_id),
                  b AS (INSERT INTO question_job (question, status, lease_owner, lease_until,
                                                  created_at)
                        VALUES ('Что со шумом?', 'running', 'dead', now() - interval '1 hour',
                                now() - interval '2 days')
                        RETURNING question_job_id)
             SELECT a.question_job_id, b.question_job_id FROM a, b",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    drop(conn);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let queues = SweepQueues {
        transcribe: Some(&aws.transcribe),
        analyze: Some(&aws.analyze),
    };
    let settings = SweepSettings {
        idle: Duration::ZERO,
        ..SweepSettings::default()
    };

    let dry = sweep(
        &db.pool,
        queues,
        &SweepSettings {
            dry_run: true,
            ..settings.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!((dry.requeued.len(), dry.failed.len()), (4, 3), "{dry:?}");
    assert_eq!(
        status(&db, exhausted).await.0,
        "transcribing",
        "a dry run changes nothing"
    );
    assert!(aws.drain(&aws.transcribe, 10).await.unwrap().is_empty());

    let report = sweep(&db.pool, queues, &settings).await.unwrap();

    // The abandoned recording goes back to the transcribe queue as S3 would notify it.
    let bodies = aws.drain(&aws.transcribe, 10).await.unwrap();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let Notification::Objects(objects) = parse_notification(&bodies[0]).unwrap() else {
        panic!("a notification of objects")
    };
    assert_eq!(objects[0].key, "recordings/a 1+ё.ogg");
    assert_eq!(objects[0].etag, "0123abcd");
    assert_eq!(status(&db, requeue).await.0, "transcribing");

    // Out of attempts: failed, naming where its worker stopped.
    let (state, reason) = status(&db, exhausted).await;
    assert_eq!(state, "failed");
    let reason = reason.unwrap();
    assert!(reason.starts_with("gave up after 5 attempts"), "{reason}");
    assert!(reason.contains("transcribing: 60 s done"), "{reason}");

    // c's two queued jobs go back to the analyze queue, the third is failed; the fresh deep
    // question goes back beside them, the two-day-old one is failed.
    let (mut sent, mut questions) = (Vec::new(), Vec::new());
    for body in aws.drain(&aws.analyze, 10).await.unwrap() {
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        match value.get("question_job_id") {
            Some(id) => questions.push(id.as_i64().unwrap()),
            None => sent.push(
                serde_json::from_value::<JobMessage>(value)
                    .unwrap()
                    .analysis_job_id,
            ),
        }
    }
    sent.sort_unstable();
    assert_eq!(sent, vec![jobs[1].analysis_job_id, jobs[2].analysis_job_id]);
    assert_eq!(questions, vec![fresh_question]);
    let failed: Vec<(&str, i64)> = report.failed.iter().map(|r| (r.kind, r.id)).collect();
    assert_eq!(
        failed,
        vec![
            ("recording", exhausted),
            ("analysis_job", jobs[0].analysis_job_id),
            ("question", old_question)
        ]
    );
    let (question_status, question_error): (String, String) = db
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT status, last_error FROM question_job WHERE question_job_id = $1",
            &[&old_question],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(question_status, "failed");
    assert!(
        question_error.starts_with("gave up after 48 h"),
        "{question_error}"
    );
    assert_eq!(
        status(&db, queued).await.0,
        "analyzing",
        "two of its jobs are still to run"
    );

    assert_eq!(report.settled, vec![unsettled]);
    assert_eq!(status(&db, unsettled).await, ("done".into(), None));

    // A second sweep soon after leaves what the first re-queued to its messages.
    let again = sweep(
        &db.pool,
        queues,
        &SweepSettings {
            idle: Duration::from_secs(60),
            ..settings
        },
    )
    .await
    .unwrap();
    assert_eq!(again.stuck(), 0, "{again:?}");
}

#[tokio::test]
async fn without_a_queue_stuck_rows_are_left_and_reported() {
    let db = TestDb::new().await.unwrap();
    let id = abandoned(&db, "recordings/e.ogg").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let settings = SweepSettings {
        idle: Duration::ZERO,
        ..SweepSettings::default()
    };
    let report = sweep(&db.pool, SweepQueues::default(), &settings)
        .await
        .unwrap();
    assert_eq!(report.left.len(), 1);
    assert_eq!(report.left[0].id, id);
    assert!(report.left[0].found.contains("transcribing: 60 s done"));
    assert_eq!(status(&db, id).await.0, "transcribing");
}
