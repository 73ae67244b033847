//! Backup and restore: a pg_dump of a database with reports and chunks restored into an empty
//! one gives the same rows, and an index rebuilt from the restored embeddings searches alike.

use std::path::PathBuf;
use std::process::Command;

use common::index::publish::{Indexer, Outcome, Settings};
use common::index::reader::{ReaderSettings, ServedIndex};
use common::search::{SearchRequest, Searcher, Served};
use vox_tests::aws::LocalAws;
use vox_tests::{TestDb, admin_url, row_counts, schema_fingerprint};

use super::analyze::stage;
use super::analyze::{engines, setup};

/// The connection string of test database `name` on the tests' server.
fn url_of(name: &str) -> String {
    let admin = admin_url();
    let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
    let server = &base[..base.rfind('/').expect("a database in the admin URL")];
    if query.is_empty() {
        format!("{server}/{name}")
    } else {
        format!("{server}/{name}?{query}")
    }
}

fn script(name: &str, database: &str, arg: &std::path::Path) -> std::process::Output {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../infra/ops")
        .join(name);
    Command::new("bash")
        .arg(path)
        .arg(arg)
        .env("DATABASE_URL", url_of(database))
        .output()
        .unwrap()
}

async fn served_ids(db: &TestDb, aws: &LocalAws, queries: &[&str]) -> Vec<Vec<i64>> {
    let mut settings = Settings::new(aws.bucket.clone());
    settings.map_size = 256 << 20;
    settings.n_trees = 8;
    let indexer = Indexer::new(db.pool.clone(), aws.s3.clone(), settings.clone());
    assert!(matches!(
        indexer.run(true).await.unwrap(),
        Outcome::Published(_)
    ));
    let cache = tempfile::tempdir().unwrap();
    let mut reader = ReaderSettings::from(&settings);
    reader.cache_dir = Some(cache.path().to_path_buf());
    let served = ServedIndex::open(aws.s3.clone(), reader).await.unwrap();
    let snapshot = served.current().unwrap();
    let searcher = Searcher::new(db.pool.clone(), engines().0);
    let mut out = Vec::new();
    for q in queries {
        let results = searcher
            .search(Some(Served::from(&*snapshot)), &SearchRequest::new(*q))
            .await
            .unwrap();
        assert_eq!(results.freshness.fresh_scanned, 0);
        out.push(results.hits.iter().map(|h| h.chunk_id).collect());
    }
    out
}

#[tokio::test]
async fn a_restored_backup_has_every_row_and_its_rebuilt_index_searches_alike() {
    let db = TestDb::new().await.unwrap();
    for (scenario, report_type, building) in [
        ("design", "structured-audit", "hotel"),
        ("interview", "common-factors", "hotel"),
    ] {
        let job = setup(&db, scenario, report_type, building).await;
        stage(&db).process(&job).await.unwrap();
    }
    let queries = [
        "холодное освещение в лобби",
        "почему гость выбрал отель",
        "шум",
    ];
    let before = served_ids(&db, &LocalAws::new().await.unwrap(), &queries).await;
    assert!(before.iter().all(|ids| !ids.is_empty()));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backups/vox.dump");
    let out = script("backup.sh", db.name(), &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("backups/vox.dump.partial").exists());

    let restored = TestDb::empty().await.unwrap();
    let out = script("restore.sh", restored.name(), &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (a, b) = (
        db.cfg.connect().await.unwrap(),
        restored.cfg.connect().await.unwrap(),
    );
    assert_eq!(row_counts(&b).await.unwrap(), row_counts(&a).await.unwrap());
    assert_eq!(
        schema_fingerprint(&b).await.unwrap(),
        schema_fingerprint(&a).await.unwrap()
    );
    let after = served_ids(&restored, &LocalAws::new().await.unwrap(), &queries).await;
    assert_eq!(after, before);

    // A restore never lands on data, and a file that is no backup is refused.
    let out = script("restore.sh", restored.name(), &file);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty one"));
    let junk = dir.path().join("junk.dump");
    std::fs::write(&junk, b"not a dump").unwrap();
    let empty = TestDb::empty().await.unwrap();
    let out = script("restore.sh", empty.name(), &junk);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a pg_dump archive"));
}
