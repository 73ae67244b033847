//! The pipeline from upload to stored reports: an object put into the emulated bucket, its
//! notification through the transcribe queue, the transcribe function, the jobs through the
//! analyze queue, the analyze function (offline engine), and the index queue told of every
//! job's reports.

use std::collections::HashMap;
use std::sync::Arc;

use common::analysis::engines::OfflineReports;
use common::analysis::stage::{IndexRequest, Settings, Stage};
use serde_json::json;
use vox_tests::TestDb;
use vox_tests::aws::LocalAws;

use super::analyze::engines;
use super::transcribe::{clip, deadline, sqs_event, stage as transcribe_stage};

#[tokio::test]
async fn an_upload_ends_as_stored_reports_with_chunks_and_index_requests() {
    let (aws, db) = (LocalAws::new().await.unwrap(), TestDb::new().await.unwrap());
    let metadata = HashMap::from([
        ("scenario".to_owned(), "design".to_owned()),
        ("building".to_owned(), "hotel".to_owned()),
        (
            "place".to_owned(),
            "%D0%93%D1%80%D0%B0%D0%BD%D0%B4".to_owned(),
        ),
        ("city".to_owned(), "Kazan".to_owned()),
        ("date".to_owned(), "2026-03-14".to_owned()),
    ]);
    aws.s3
        .put_file(
            &aws.bucket,
            "design/ru_06.ogg",
            &clip("ru_06.ogg"),
            "audio/ogg",
            &metadata,
        )
        .await
        .unwrap();
    let transcriber = transcribe_stage(&db, &aws, "t1");
    let event = transcribe::Invocation::from_json(sqs_event(&aws).await).unwrap();
    let response = transcribe::handle(&transcriber, &Default::default(), event, deadline())
        .await
        .unwrap();
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");

    let (embedder, engine) = engines();
    let analyzer = Stage {
        pool: db.pool.clone(),
        engine: Arc::new(OfflineReports(engine)),
        embedder,
        index: Some(aws.index.clone()),
        settings: Settings::default(),
        worker: "a1".into(),
    };
    let bodies = aws.drain(&aws.analyze, 10).await.unwrap();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"messageId": format!("j{i}"), "body": b, "eventSource": "aws:sqs"}))
        .collect();
    let event = analyze::Invocation::from_json(json!({ "Records": records })).unwrap();
    let response = analyze::handle(&analyzer, None, event).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");

    let conn = db.pool.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT r.status,
                    (SELECT count(*) FROM analysis_job j WHERE j.recording_id = r.recording_id AND j.status = 'done'),
                    (SELECT count(*) FROM audit a JOIN transcription t USING (transcription_id)
                     WHERE t.recording_id = r.recording_id),
                    (SELECT count(*) FROM chunk),
                    (SELECT string_agg(DISTINCT p.place_name || '/' || c.city_name, ',')
                     FROM audit a JOIN place p USING (place_id) JOIN city c USING (city_id))
             FROM recording r",
            &[],
        )
        .await
        .unwrap();
    let (status, jobs_done, audits, chunks, where_): (String, i64, i64, i64, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert_eq!(status, "done");
    assert_eq!(jobs_done, 3);
    // audit-methodology 2 passes, audit-compliance (hotel) 2, structured-audit (hotel) 4.
    assert_eq!(audits, 8);
    assert!(chunks >= 5, "{chunks}");
    assert_eq!(where_, "Гранд/Kazan");

    let requests: Vec<IndexRequest> = aws
        .drain(&aws.index, 10)
        .await
        .unwrap()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(requests.len(), 3);
    let announced: usize = requests.iter().map(|r| r.audit_ids.len()).sum();
    assert_eq!(announced as i64, audits);
}
