use std::sync::Arc;

use common::Error;
use common::db::audit::{self, PersistStep, ReportBody, TranscriptionSource};
use serde_json::json;
use vox_tests::{TestDb, row_counts};

use crate::support::{design_submission, metrics};

#[tokio::test]
async fn a_submission_writes_every_row_of_the_audit() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool.get().await.unwrap();
    let before = row_counts(&conn).await.unwrap();

    let out = audit::persist(&mut conn, &design_submission("rec-1.ogg"))
        .await
        .unwrap();

    let after = row_counts(&conn).await.unwrap();
    let added = |t: &str| after[t] - before[t];
    assert_eq!(out.audit_ids.len(), 3);
    assert_eq!(
        [
            added("employee"),
            added("place"),
            added("zone"),
            added("place_zone"),
            added("city")
        ],
        [1, 1, 2, 2, 1]
    );
    assert_eq!(added("client"), 0);
    assert_eq!(
        [added("transcription"), added("transcription_segment")],
        [1, 2]
    );
    assert_eq!(
        [added("audit"), added("user_road"), added("audit_zone")],
        [3, 3, 6]
    );

    let metrics_row = audit::get(&conn, out.audit_ids[2]).await.unwrap().unwrap();
    assert_eq!(metrics_row.kind, "metrics");
    assert_eq!(
        metrics_row.metrics,
        Some(metrics("structured-audit", "hotel"))
    );
    let second = audit::get(&conn, out.audit_ids[1]).await.unwrap().unwrap();
    assert_eq!(second.unverified_quotes, 1);
}

#[tokio::test]
async fn persisting_the_same_job_twice_leaves_one_set_of_rows() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool.get().await.unwrap();
    let submission = design_submission("rec-1.ogg");

    let first = audit::persist(&mut conn, &submission).await.unwrap();
    let counts = row_counts(&conn).await.unwrap();
    let second = audit::persist(&mut conn, &submission).await.unwrap();

    assert_eq!(first, second);
    assert_eq!(row_counts(&conn).await.unwrap(), counts);
}

#[tokio::test]
async fn a_rerun_with_fewer_passes_replaces_the_old_reports() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool.get().await.unwrap();
    let mut submission = design_submission("rec-1.ogg");
    let first = audit::persist(&mut conn, &submission).await.unwrap();

    submission.reports.remove(1);
    if let ReportBody::Narrative(text) = &mut submission.reports[0].body {
        text.push_str("\nДополнено.");
    }
    let second = audit::persist(&mut conn, &submission).await.unwrap();

    assert_eq!(
        second.audit_ids,
        vec![first.audit_ids[0], first.audit_ids[2]]
    );
    let audits: i64 = conn
        .query_one("SELECT count(*) FROM audit", &[])
        .await
        .unwrap()
        .get(0);
    let roads: i64 = conn
        .query_one("SELECT count(*) FROM user_road", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((audits, roads), (2, 2));
    let text = audit::get(&conn, first.audit_ids[0])
        .await
        .unwrap()
        .unwrap()
        .audit_text;
    assert!(text.ends_with("Дополнено."));
}

#[tokio::test]
async fn a_failure_after_any_step_leaves_no_new_row_in_any_table() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool.get().await.unwrap();
    let before = row_counts(&conn).await.unwrap();
    let submission = design_submission("rec-1.ogg");

    for fail_at in PersistStep::ALL {
        let tx = conn.transaction().await.unwrap();
        let checkpoint = move |step: PersistStep| {
            if step == fail_at {
                Err(Error::Injected {
                    step: step.as_str(),
                })
            } else {
                Ok(())
            }
        };
        let err = audit::persist_in(&tx, &submission, &checkpoint)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Injected { .. }), "{fail_at:?}: {err}");
        // Dropping the transaction rolls it back, as a crashed handler's would be.
        drop(tx);
        assert_eq!(
            row_counts(&conn).await.unwrap(),
            before,
            "after a failure at {fail_at:?}"
        );
    }
}

#[tokio::test]
async fn thirty_two_concurrent_persists_sharing_names_create_each_name_once() {
    let db = TestDb::new().await.unwrap();
    let pool = Arc::new(
        common::db::PgPool::new(&common::db::DbConfig {
            pool_size: 32,
            ..db.cfg.clone()
        })
        .unwrap(),
    );

    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move {
                let mut submission = design_submission(&format!("rec-{i}.ogg"));
                // Zones in different orders, so a naive implementation would deadlock.
                if i % 2 == 1 {
                    submission.meta.zones.reverse();
                }
                let mut conn = pool.get().await?;
                audit::persist(&mut conn, &submission).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    let conn = db.pool.get().await.unwrap();
    let counts = row_counts(&conn).await.unwrap();
    assert_eq!(
        [
            counts["employee"],
            counts["place"],
            counts["zone"],
            counts["city"],
            counts["place_zone"]
        ],
        [1, 1, 2, 1, 2]
    );
    assert_eq!(
        [
            counts["transcription"],
            counts["audit"],
            counts["user_road"]
        ],
        [32, 96, 96]
    );
}

#[tokio::test]
async fn hostile_and_unusual_names_are_stored_and_read_back_exactly() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool.get().await.unwrap();
    let long: String = "Ёжик в тумане, ".repeat(700).chars().take(10_000).collect();
    let names = [
        "O'Brien \"Bob\" `x`".to_owned(),
        "'; DROP TABLE audit; --".to_owned(),
        "Отель «Сияние» 🌟🏨".to_owned(),
        "Алёна Ёлкина".to_owned(),
        long,
    ];

    for (i, name) in names.iter().enumerate() {
        let mut s = design_submission(&format!("{name}.ogg"));
        s.meta.employee = Some(name.clone());
        s.meta.place = Some(name.clone());
        s.meta.city = Some(name.clone());
        s.meta.zones = vec![name.clone()];
        if let TranscriptionSource::New(t) = &mut s.transcription {
            t.text = format!("{name} {i}");
        }
        let out = audit::persist(&mut conn, &s).await.unwrap();

        let row = audit::get(&conn, out.audit_ids[0]).await.unwrap().unwrap();
        assert_eq!(row.employee_name.as_deref(), Some(name.as_str()));
        assert_eq!(row.place_name.as_deref(), Some(name.as_str()));
        assert_eq!(row.city_name.as_deref(), Some(name.as_str()));
        assert_eq!(row.zone_names, vec![name.clone()]);
        assert_eq!(row.audio_file_name, format!("{name}.ogg"));
    }
    let audits: i64 = conn
        .query_one("SELECT count(*) FROM audit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(audits, 15, "the injection attempt did not drop anything");
}

#[tokio::test]
async fn an_invalid_pair_or_unknown_scenario_is_rejected_and_nothing_is_written() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool.get().await.unwrap();
    let before = row_counts(&conn).await.unwrap();

    let mut invalid_pair = design_submission("x.ogg");
    invalid_pair.building = "non-building".into();
    let err = audit::persist(&mut conn, &invalid_pair).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "report type \"structured-audit\" is not valid for building \"non-building\""
    );

    let mut unknown = design_submission("x.ogg");
    unknown.scenario = "Ревизия".into();
    let err = audit::persist(&mut conn, &unknown).await.unwrap_err();
    assert_eq!(err.to_string(), "unknown scenario \"Ревизия\"");

    assert_eq!(row_counts(&conn).await.unwrap(), before);
}

#[tokio::test]
async fn metrics_that_break_the_schema_are_rejected_and_nothing_is_written() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool.get().await.unwrap();
    let before = row_counts(&conn).await.unwrap();
    let mut s = design_submission("x.ogg");
    s.reports[2].body =
        ReportBody::Metrics(json!({"общее_количество_пунктов_информации": "много"}));

    let err = audit::persist(&mut conn, &s).await.unwrap_err();

    assert!(matches!(err, Error::InvalidMetrics { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("общее_количество_пунктов_информации"),
        "{err}"
    );
    assert_eq!(row_counts(&conn).await.unwrap(), before);
}

#[tokio::test]
async fn malformed_submissions_are_rejected_with_the_field_at_fault() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool.get().await.unwrap();

    let mut s = design_submission("x.ogg");
    s.reports[1].pass = 1;
    let err = audit::persist(&mut conn, &s).await.unwrap_err().to_string();
    assert!(err.contains("pass 1 appears twice"), "{err}");

    let mut s = design_submission("x.ogg");
    s.reports.clear();
    let err = audit::persist(&mut conn, &s).await.unwrap_err().to_string();
    assert!(err.contains("reports"), "{err}");

    let mut s = design_submission("x.ogg");
    s.transcription = TranscriptionSource::Stored(987_654);
    let err = audit::persist(&mut conn, &s).await.unwrap_err().to_string();
    assert_eq!(err, "transcription 987654 does not exist");

    let mut s = design_submission("x.ogg");
    s.meta.employee = Some(" ".into());
    let err = audit::persist(&mut conn, &s).await.unwrap_err().to_string();
    assert_eq!(err, "employee is not valid: must not be blank");

    // A place for a building-independent report needs the place's own building type.
    let mut s = design_submission("x.ogg");
    s.report_type = "audit-methodology".into();
    s.building = "non-building".into();
    s.reports.truncate(1);
    let err = audit::persist(&mut conn, &s).await.unwrap_err().to_string();
    assert!(err.contains("place_building"), "{err}");
    s.place_building = Some("restaurant".into());
    let out = audit::persist(&mut conn, &s).await.unwrap();
    let row = audit::get(&conn, out.audit_ids[0]).await.unwrap().unwrap();
    assert_eq!(row.building_type.as_deref(), Some("Ресторан"));
    assert_eq!(row.building, "non-building");
}

#[tokio::test]
async fn a_stored_transcription_is_referenced_not_copied() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool.get().await.unwrap();
    let first = audit::persist(&mut conn, &design_submission("rec.ogg"))
        .await
        .unwrap();

    let mut s = design_submission("rec.ogg");
    s.report_type = "audit-compliance".into();
    s.transcription = TranscriptionSource::Stored(first.transcription_id);
    s.reports = vec![s.reports[0].clone()];
    s.reports[0].pass = 1;
    let second = audit::persist(&mut conn, &s).await.unwrap();

    assert_eq!(second.transcription_id, first.transcription_id);
    let n: i64 = conn
        .query_one("SELECT count(*) FROM transcription", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}
