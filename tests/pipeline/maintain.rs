//! Retention and maintenance against PostgreSQL and moto: expired audio goes (its recording
//! row, transcript and reports stay), old deep questions go, orphan snapshots go, a dry run
//! deletes nothing, and a second run finds nothing more.

use aws_sdk_s3::primitives::ByteStream;
use chrono::Duration;
use common::index::publish::{Indexer, Outcome, Settings};
use common::maintain::{self, MaintainSettings};
use common::sweep::SweepQueues;
use vox_tests::TestDb;
use vox_tests::aws::LocalAws;

use super::analyze::{setup, stage};

async fn put(aws: &LocalAws, key: &str) {
    aws.s3
        .put(
            &aws.bucket,
            key,
            ByteStream::from_static(b"audio"),
            "audio/ogg",
            &Default::default(),
        )
        .await
        .unwrap();
}

/// A finished recording whose object exists, finished `days_ago` days ago.
async fn recording(db: &TestDb, aws: &LocalAws, key: &str, status: &str, days_ago: i32) -> i64 {
    put(aws, key).await;
    let conn = db.pool.get().await.unwrap();
    conn.query_one(
        "INSERT INTO recording (bucket, object_key, etag, status, finished_at, updated_at)
         VALUES ($1, $2, 'e', $3, now() - make_interval(days => $4),
                 now() - make_interval(days => $4))
         RETURNING recording_id",
        &[&aws.bucket, &key, &status, &days_ago],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn retention_deletes_what_expired_and_nothing_else() {
    let db = TestDb::new().await.unwrap();
    let aws = LocalAws::new().await.unwrap();
    let old = recording(&db, &aws, "design/old.ogg", "done", 40).await;
    let failed = recording(&db, &aws, "design/failed.ogg", "failed", 31).await;
    recording(&db, &aws, "design/recent.ogg", "done", 3).await;
    recording(&db, &aws, "design/in-flight.ogg", "transcribing", 60).await;
    let conn = db.pool.get().await.unwrap();
    conn.batch_execute(
        "INSERT INTO question_job (question, status, result, finished_at) VALUES
           ('старый вопрос', 'done', '{}', now() - interval '100 days'),
           ('новый вопрос', 'done', '{}', now() - interval '1 day'),
           ('идёт', 'running', NULL, NULL)",
    )
    .await
    .unwrap();

    // An index with one published generation and an orphan upload beside it.
    let job = setup(&db, "interview", "links", "non-building").await;
    stage(&db).process(&job).await.unwrap();
    let mut index = Settings::new(aws.bucket.clone());
    index.map_size = 256 << 20;
    index.n_trees = 4;
    let indexer = Indexer::new(db.pool.clone(), aws.s3.clone(), index.clone());
    assert!(matches!(
        indexer.run(false).await.unwrap(),
        Outcome::Published(_)
    ));
    let orphan = index.generation_key(77);
    put(&aws, &orphan).await;

    let mut settings = MaintainSettings {
        audio_retention_days: Some(30),
        dry_run: true,
        orphan_min_age: Duration::zero(),
        ..MaintainSettings::default()
    };
    let dry = maintain::run(
        &db.pool,
        &aws.s3,
        Some(&index),
        SweepQueues::default(),
        &settings,
    )
    .await
    .unwrap();
    let ids: Vec<i64> = dry.audio_deleted.iter().map(|a| a.recording_id).collect();
    assert_eq!(ids, vec![old, failed]);
    assert_eq!(dry.questions_deleted, 1);
    let health = dry.index.as_ref().unwrap();
    assert_eq!(health.generation, Some(1));
    assert_eq!(health.chunks_not_indexed, 0);
    assert_eq!(health.orphan_snapshots, vec![orphan.clone()]);
    // Nothing was deleted.
    aws.s3.head(&aws.bucket, "design/old.ogg").await.unwrap();
    aws.s3.head(&aws.bucket, &orphan).await.unwrap();

    settings.dry_run = false;
    let done = maintain::run(
        &db.pool,
        &aws.s3,
        Some(&index),
        SweepQueues::default(),
        &settings,
    )
    .await
    .unwrap();
    assert_eq!(done.audio_deleted.len(), 2);
    assert!(aws.s3.head(&aws.bucket, "design/old.ogg").await.is_err());
    assert!(aws.s3.head(&aws.bucket, "design/failed.ogg").await.is_err());
    assert!(aws.s3.head(&aws.bucket, &orphan).await.is_err());
    for kept in ["design/recent.ogg", "design/in-flight.ogg"] {
        aws.s3.head(&aws.bucket, kept).await.unwrap();
    }
    // The published snapshot is untouched, the recordings' rows stay and say so.
    let manifest =
        common::index::publish::read_manifest(&aws.s3, &aws.bucket, &index.manifest_key())
            .await
            .unwrap()
            .unwrap();
    aws.s3
        .head(&aws.bucket, &manifest.manifest.object_key)
        .await
        .unwrap();
    let marked: i64 = conn
        .query_one(
            "SELECT count(*) FROM recording WHERE audio_deleted_at IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(marked, 2);
    let questions: Vec<String> = conn
        .query("SELECT question FROM question_job ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(questions, ["идёт", "новый вопрос"]);

    let again = maintain::run(
        &db.pool,
        &aws.s3,
        Some(&index),
        SweepQueues::default(),
        &settings,
    )
    .await
    .unwrap();
    assert!(again.audio_deleted.is_empty());
    assert_eq!(again.questions_deleted, 0);
    assert!(again.index.unwrap().orphan_snapshots.is_empty());
}
