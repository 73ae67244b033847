//! The reads and writes of the HTTP API: upload intents, recording listings, what a
//! recording produced, an audit's provenance, reference listings.

use common::db::audit::{self, TranscriptionSource};
use common::db::{recording, reference};
use serde_json::json;
use vox_tests::TestDb;

use crate::support::design_submission;

#[tokio::test]
async fn an_upload_intent_waits_for_its_object_and_lists_newest_first() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    let meta = json!({"scenario": "design", "building": "hotel"});
    let mut ids = Vec::new();
    for key in ["a.ogg", "b.ogg", "c.ogg"] {
        let row = recording::create_intent(&conn, "audio", key, "audio/ogg", 100, &meta, None)
            .await
            .unwrap();
        assert_eq!(
            (row.status.as_str(), row.etag.as_str()),
            ("awaiting_upload", "")
        );
        assert_eq!(row.metadata, meta);
        ids.push(row.recording_id);
    }
    conn.execute(
        "UPDATE recording SET status = 'done' WHERE recording_id = $1",
        &[&ids[0]],
    )
    .await
    .unwrap();

    let first = recording::list(&conn, None, None, None, 2).await.unwrap();
    let second = recording::list(&conn, None, None, first.next_after, 2)
        .await
        .unwrap();
    let done = recording::list(&conn, Some("done"), None, None, 10)
        .await
        .unwrap();
    let bad = recording::list(&conn, Some("lost"), None, None, 10).await;
    let not_object =
        recording::create_intent(&conn, "audio", "d.ogg", "audio/ogg", 1, &json!([]), None).await;

    let page = |p: &audit::Page<recording::RecordingRow>| -> Vec<i64> {
        p.items.iter().map(|r| r.recording_id).collect()
    };
    assert_eq!(page(&first), vec![ids[2], ids[1]]);
    assert_eq!(first.next_after, Some(ids[1]));
    assert_eq!(page(&second), vec![ids[0]]);
    assert_eq!(second.next_after, None);
    assert_eq!(page(&done), vec![ids[0]]);
    assert!(matches!(
        bad,
        Err(common::Error::InvalidInput {
            field: "status",
            ..
        })
    ));
    assert!(matches!(
        not_object,
        Err(common::Error::InvalidInput {
            field: "metadata",
            ..
        })
    ));
}

#[tokio::test]
async fn a_recording_lists_its_transcription_jobs_and_audits_and_an_audit_its_provenance() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool.get().await.unwrap();
    let row = recording::create_intent(&conn, "audio", "a.ogg", "audio/ogg", 100, &json!({}), None)
        .await
        .unwrap();
    let empty = recording::produced(&conn, row.recording_id).await.unwrap();
    let mut submission = design_submission("a.ogg");
    if let TranscriptionSource::New(t) = &mut submission.transcription {
        t.recording_id = Some(row.recording_id);
    }
    let persisted = audit::persist(&mut conn, &submission).await.unwrap();

    let produced = recording::produced(&conn, row.recording_id).await.unwrap();
    let provenance = audit::provenance(&conn, persisted.audit_ids[1])
        .await
        .unwrap()
        .unwrap();
    let none = audit::provenance(&conn, 999_999).await.unwrap();

    assert_eq!(empty.transcription_id, None);
    assert!(empty.audits.is_empty() && empty.jobs.is_empty());
    assert_eq!(produced.transcription_id, Some(persisted.transcription_id));
    let ids: Vec<i64> = produced.audits.iter().map(|a| a.audit_id).collect();
    assert_eq!(ids, persisted.audit_ids);
    assert_eq!(produced.audits[0].report_type, "structured-audit");
    assert_eq!(produced.audits[0].building, "hotel");
    assert_eq!(produced.audits[2].kind, "metrics");
    assert_eq!(provenance.recording_id, Some(row.recording_id));
    assert_eq!(provenance.engine.as_deref(), Some("offline"));
    assert_eq!(provenance.quotes.len(), 1);
    assert!(!provenance.quotes[0].verified);
    assert_eq!(none, None);
}

#[tokio::test]
async fn reference_listings_hold_the_seeded_scenarios_and_building_pairs() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();

    let scenarios = reference::scenarios(&conn).await.unwrap();
    let buildings = reference::buildings(&conn).await.unwrap();

    let ids: Vec<&str> = scenarios.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["design", "interview"]);
    let spa = buildings.iter().find(|b| b.id == "spa").unwrap();
    assert_eq!(spa.name, "Центр Здоровья");
    assert_eq!(
        spa.report_types,
        [
            "common-factors",
            "venue-factors",
            "audit-compliance",
            "structured-audit"
        ]
    );
    let none = buildings.iter().find(|b| b.id == "non-building").unwrap();
    assert_eq!(
        none.report_types,
        ["interview-methodology", "links", "audit-methodology"]
    );
}
