use common::db::analysis_job;
use common::db::transcription;
use vox_tests::TestDb;

use crate::support::new_transcription;

#[tokio::test]
async fn a_design_audit_of_a_hotel_gets_every_valid_report_once() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    let (t, _) = transcription::get_or_create(&conn, &new_transcription("a.ogg", "Текст."))
        .await
        .unwrap();

    let jobs = analysis_job::create_for_transcription(&conn, None, t, "design", "hotel", &[])
        .await
        .unwrap();
    let again = analysis_job::create_for_transcription(&conn, None, t, "Дизайн", "Отель", &[])
        .await
        .unwrap();

    let pairs: Vec<(&str, &str)> = jobs
        .iter()
        .map(|j| (j.report_type.as_str(), j.building.as_str()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("audit-methodology", "non-building"),
            ("audit-compliance", "hotel"),
            ("structured-audit", "hotel")
        ]
    );
    assert_eq!(jobs, again, "job ids are deterministic");
    let n: i64 = conn
        .query_one("SELECT count(*) FROM analysis_job", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
}

#[tokio::test]
async fn requested_report_types_are_honoured_and_invalid_ones_named() {
    let db = TestDb::new().await.unwrap();
    let conn = db.pool.get().await.unwrap();
    let (t, _) = transcription::get_or_create(&conn, &new_transcription("b.ogg", "Текст."))
        .await
        .unwrap();

    let jobs = analysis_job::create_for_transcription(
        &conn,
        None,
        t,
        "interview",
        "spa",
        &["links".into()],
    )
    .await
    .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].report_type.as_str(), jobs[0].building.as_str()),
        ("links", "non-building")
    );

    let err = analysis_job::create_for_transcription(
        &conn,
        None,
        t,
        "interview",
        "spa",
        &["structured-audit".into()],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("\"structured-audit\" is not a report type of scenario"),
        "{err}"
    );
    let err = analysis_job::create_for_transcription(&conn, None, t, "Ревизия", "spa", &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Ревизия"), "{err}");
}
