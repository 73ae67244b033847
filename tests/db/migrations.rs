use common::db::migrate;
use vox_tests::{TestDb, row_counts, schema_fingerprint};

#[tokio::test]
async fn migrating_twice_applies_once_and_leaves_the_same_schema() {
    let db = TestDb::empty().await.unwrap();
    let mut client = db.cfg.connect().await.unwrap();

    let first = migrate::run(&mut client).await.unwrap();
    let schema_after_first = schema_fingerprint(&client).await.unwrap();
    let counts_after_first = row_counts(&client).await.unwrap();
    let second = migrate::run(&mut client).await.unwrap();

    assert!(!first.applied.is_empty());
    assert!(
        second.applied.is_empty(),
        "second run applied {:?}",
        second.applied
    );
    assert_eq!(first.version, second.version);
    assert_eq!(
        schema_fingerprint(&client).await.unwrap(),
        schema_after_first
    );
    assert_eq!(row_counts(&client).await.unwrap(), counts_after_first);
}

#[tokio::test]
async fn two_concurrent_migration_runs_end_in_the_schema_of_one() {
    let reference = TestDb::empty().await.unwrap();
    let mut client = reference.cfg.connect().await.unwrap();
    migrate::run(&mut client).await.unwrap();
    let expected = schema_fingerprint(&client).await.unwrap();

    let db = TestDb::empty().await.unwrap();
    let (mut a, mut b) = (
        db.cfg.connect().await.unwrap(),
        db.cfg.connect().await.unwrap(),
    );
    let (ra, rb) = tokio::join!(migrate::run(&mut a), migrate::run(&mut b));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());

    // Exactly one of the two did the work.
    assert!(
        ra.applied.is_empty() != rb.applied.is_empty(),
        "{ra:?} / {rb:?}"
    );
    assert_eq!(schema_fingerprint(&a).await.unwrap(), expected);
    assert_eq!(
        row_counts(&a).await.unwrap(),
        row_counts(&client).await.unwrap(),
        "seed rows differ"
    );
}

#[tokio::test]
async fn ensure_database_creates_a_missing_database_once() {
    let db = TestDb::empty().await.unwrap();
    let missing = db.cfg.with_dbname(&format!("{}_created", db.name()));

    let (a, b) = tokio::join!(
        migrate::ensure_database(&missing),
        migrate::ensure_database(&missing)
    );
    let created = [a.unwrap(), b.unwrap()];
    let again = migrate::ensure_database(&missing).await.unwrap();

    assert_eq!(created.iter().filter(|c| **c).count(), 1, "{created:?}");
    assert!(!again);
    let report = migrate::ensure_migrated(&missing).await.unwrap();
    assert!(report.version.is_some());
    // Clean up the extra database.
    let admin = db.cfg.with_dbname("postgres").connect().await.unwrap();
    admin
        .batch_execute(&format!(
            "DROP DATABASE {} WITH (FORCE)",
            migrate::quote_ident(&missing.dbname())
        ))
        .await
        .unwrap();
}
