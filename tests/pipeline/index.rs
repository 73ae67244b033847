//! The index writer end to end: real chunks made by the analyze stage (offline engine, real
//! sentence encoder), PostgreSQL, and S3 on moto. Generations grow, stay searchable, expire;
//! a stale manifest and a different embedding model are refused; a rebuild starts afresh.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_s3::primitives::ByteStream;
use common::analysis::stage::Outcome as AnalyzeOutcome;
use common::db::chunk::decode_embedding;
use common::index::publish::{
    self, Indexer, Manifest, Outcome, Report, Settings, WRITER_LOCK, read_manifest, write_manifest,
};
use common::index::{IndexReader, sha256_file};
use vox_tests::TestDb;
use vox_tests::aws::LocalAws;

use super::analyze::{setup, stage};

pub(crate) fn indexer(db: &TestDb, aws: &LocalAws, keep: usize) -> Indexer {
    let mut settings = Settings::new(aws.bucket.clone());
    settings.keep_generations = keep;
    settings.map_size = 256 << 20;
    settings.n_trees = 4;
    settings.batch_size = 50; // several batches per run
    Indexer::new(db.pool.clone(), aws.s3.clone(), settings)
}

/// Runs one analysis job; returns how many chunks it stored.
async fn analyze(db: &TestDb, scenario: &str, report_type: &str, building: &str) -> usize {
    let job = setup(db, scenario, report_type, building).await;
    match stage(db).process(&job).await.unwrap() {
        AnalyzeOutcome::Analyzed { chunks, .. } => chunks,
        other => panic!("{report_type}/{building}: {other:?}"),
    }
}

pub(crate) fn published(outcome: Outcome) -> Report {
    match outcome {
        Outcome::Published(r) => r,
        other => panic!("expected a new generation: {other:?}"),
    }
}

/// Chunks per configuration name, as the index should count them.
async fn expected_counts(db: &TestDb) -> BTreeMap<String, u64> {
    let conn = db.pool.get().await.unwrap();
    let rows = conn
        .query(
            "SELECT ic.name, count(*) FROM chunk c
             JOIN audit a ON a.audit_id = c.audit_id
             JOIN report_type rt ON rt.report_type_id = a.report_type_id
             JOIN index_config ic ON ic.report_type_id = a.report_type_id
               OR (ic.report_type_id IS NULL AND ic.scenario_id = rt.scenario_id
                   AND NOT a.report_type_id = ANY (ic.excluded_report_type_ids))
             GROUP BY ic.name
             UNION ALL
             SELECT 'transcripts', count(*) FROM chunk WHERE transcription_id IS NOT NULL
             UNION ALL
             SELECT 'all', count(*) FROM chunk",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect()
}

fn nonzero(counts: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (k.clone(), *n))
        .collect()
}

async fn config_id(db: &TestDb, name: &str) -> u16 {
    let conn = db.pool.get().await.unwrap();
    let id: i16 = conn
        .query_one(
            "SELECT index_config_id FROM index_config WHERE name = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    id as u16
}

/// The lowest chunk id of a report type (above `after`) and its embedding.
async fn first_chunk(db: &TestDb, report_type: &str, after: i64) -> (i64, Vec<f32>) {
    let conn = db.pool.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT c.chunk_id, c.embedding FROM chunk c
             JOIN audit a ON a.audit_id = c.audit_id
             JOIN report_type rt ON rt.report_type_id = a.report_type_id
             WHERE rt.code = $1 AND c.chunk_id > $2 ORDER BY c.chunk_id LIMIT 1",
            &[&report_type, &after],
        )
        .await
        .unwrap();
    (row.get(0), decode_embedding(row.get(1)))
}

async fn max_chunk_id(db: &TestDb) -> i64 {
    let conn = db.pool.get().await.unwrap();
    conn.query_one("SELECT coalesce(max(chunk_id), 0) FROM chunk", &[])
        .await
        .unwrap()
        .get(0)
}

/// Downloads the manifest's snapshot, checks its checksum, and opens it.
async fn open_published(
    aws: &LocalAws,
    manifest: &Manifest,
    dir: &tempfile::TempDir,
) -> IndexReader {
    let path = dir.path().join(format!("gen-{}.mdb", manifest.generation));
    let size = aws
        .s3
        .download_to(&aws.bucket, &manifest.object_key, &path, u64::MAX)
        .await
        .unwrap();
    assert_eq!(size, manifest.size_bytes);
    assert_eq!(sha256_file(&path).unwrap(), manifest.checksum);
    IndexReader::open_snapshot(&path).unwrap()
}

fn assert_finds_itself(reader: &IndexReader, config: u16, chunk_id: i64, embedding: &[f32]) {
    let hits = reader.search(config, embedding, 5, None).unwrap();
    assert_eq!(
        hits.first().map(|h| h.0),
        Some(chunk_id),
        "chunk {chunk_id} in config {config}: {hits:?}"
    );
    assert!(hits[0].1 > 0.999, "{hits:?}");
}

async fn manifest_now(aws: &LocalAws) -> Option<publish::CurrentManifest> {
    read_manifest(&aws.s3, &aws.bucket, "index/manifest.json")
        .await
        .unwrap()
}

async fn generation_rows(db: &TestDb) -> Vec<(i64, bool)> {
    let conn = db.pool.get().await.unwrap();
    conn.query(
        "SELECT generation, deleted_at IS NOT NULL FROM index_generation ORDER BY generation",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

fn sqs_batch(bodies: &[&str]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for (i, body) in bodies.iter().enumerate() {
        let mut m = SqsMessage::default();
        m.message_id = Some(format!("m{i}"));
        m.body = Some((*body).to_owned());
        event.records.push(m);
    }
    event
}

#[tokio::test]
async fn generations_grow_stay_searchable_expire_and_rebuild() {
    let db = TestDb::new().await.unwrap();
    let aws = LocalAws::new().await.unwrap();
    let indexer = indexer(&db, &aws, 2);
    let tmp = tempfile::tempdir().unwrap();

    // Nothing yet: nothing published.
    assert_eq!(
        indexer.run(false).await.unwrap(),
        Outcome::UpToDate {
            generation: None,
            high_water_mark: 0
        }
    );

    assert!(analyze(&db, "interview", "links", "non-building").await > 0);
    let first = published(indexer.run(false).await.unwrap());
    assert_eq!(first.generation, 1);
    assert_eq!(first.previous_generation, None);
    let expected = expected_counts(&db).await;
    assert_eq!(nonzero(&first.counts), expected);
    assert_eq!(expected.get("links"), expected.get("interview"));
    assert_eq!(first.high_water_mark, max_chunk_id(&db).await);

    let current = manifest_now(&aws).await.expect("a manifest");
    let m1 = current.manifest.clone();
    assert_eq!(m1.generation, 1);
    assert_eq!(m1.object_key, "index/generations/00000001/index.mdb");
    assert_eq!(m1.high_water_mark, first.high_water_mark);
    assert_eq!(m1.counts, first.counts);
    assert_eq!(m1.dims, 512);
    assert_eq!(m1.checksum, first.checksum);
    assert!(!m1.embedding_model.is_empty());
    let links = config_id(&db, "links").await;
    let interview = config_id(&db, "interview").await;
    let (old_chunk, old_embedding) = first_chunk(&db, "links", 0).await;
    {
        let reader = open_published(&aws, &m1, &tmp).await;
        assert_finds_itself(&reader, links, old_chunk, &old_embedding);
        assert_finds_itself(&reader, interview, old_chunk, &old_embedding);
    }

    // No new chunks: no new generation (through the function, which fails no message).
    let response = index_fn::handle_sqs(
        &indexer,
        sqs_batch(&[r#"{"analysis_job_id":1,"audit_ids":[1]}"#]),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(manifest_now(&aws).await.unwrap().etag, current.etag);
    assert_eq!(
        indexer.run(false).await.unwrap(),
        Outcome::UpToDate {
            generation: Some(1),
            high_water_mark: first.high_water_mark
        }
    );

    // New chunks: generation 2 holds old and new.
    assert!(analyze(&db, "design", "structured-audit", "hotel").await > 0);
    let second = published(indexer.run(false).await.unwrap());
    assert_eq!(second.generation, 2);
    assert_eq!(second.previous_generation, Some(1));
    assert!(second.high_water_mark > first.high_water_mark);
    assert_eq!(second.high_water_mark, max_chunk_id(&db).await);
    assert_eq!(nonzero(&second.counts), expected_counts(&db).await);
    assert!(second.deleted_generations.is_empty());
    let m2 = manifest_now(&aws).await.unwrap().manifest;
    assert_eq!(m2.generation, 2);
    let (new_chunk, new_embedding) =
        first_chunk(&db, "structured-audit", first.high_water_mark).await;
    {
        let reader = open_published(&aws, &m2, &tmp).await;
        assert_finds_itself(&reader, links, old_chunk, &old_embedding);
        assert_finds_itself(
            &reader,
            config_id(&db, "design").await,
            new_chunk,
            &new_embedding,
        );
        assert_finds_itself(
            &reader,
            config_id(&db, "structured-audit").await,
            new_chunk,
            &new_embedding,
        );
        assert!(!reader.contains(interview, new_chunk).unwrap());
    }

    // A rebuild (requested through the function) replaces it with generation 3; keeping 2,
    // generation 1's snapshot goes.
    let response = index_fn::handle_sqs(&indexer, sqs_batch(&[r#"{"rebuild": true}"#])).await;
    assert!(response.batch_item_failures.is_empty());
    let m3 = manifest_now(&aws).await.unwrap().manifest;
    assert_eq!(m3.generation, 3);
    assert_eq!(m3.counts, m2.counts);
    assert_eq!(m3.high_water_mark, m2.high_water_mark);
    {
        let reader = open_published(&aws, &m3, &tmp).await;
        assert_finds_itself(&reader, links, old_chunk, &old_embedding);
        assert_finds_itself(
            &reader,
            config_id(&db, "design").await,
            new_chunk,
            &new_embedding,
        );
    }
    let gone = aws.s3.head(&aws.bucket, &m1.object_key).await.unwrap_err();
    assert!(
        matches!(gone, common::Error::ObjectNotFound { .. }),
        "{gone}"
    );
    aws.s3.head(&aws.bucket, &m2.object_key).await.unwrap();
    assert_eq!(
        generation_rows(&db).await,
        vec![(1, true), (2, false), (3, false)]
    );
}

#[tokio::test]
async fn a_stale_manifest_loses_and_changes_nothing() {
    let db = TestDb::new().await.unwrap();
    let aws = LocalAws::new().await.unwrap();
    analyze(&db, "interview", "links", "non-building").await;
    published(indexer(&db, &aws, 3).run(false).await.unwrap());
    let before = manifest_now(&aws).await.unwrap();

    // Directly: a write with a stale ETag, or as the first manifest, is refused.
    let mut other = before.manifest.clone();
    other.generation = 99;
    for expected in [Some("0123456789abcdef0123456789abcdef"), None] {
        let err = write_manifest(
            &aws.s3,
            &aws.bucket,
            "index/manifest.json",
            &other,
            expected,
        )
        .await
        .unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }
    assert_eq!(manifest_now(&aws).await.unwrap(), before);

    // During a run: another writer replaces the manifest between read and write.
    analyze(&db, "interview", "common-factors", "hotel").await;
    let mut racing = indexer(&db, &aws, 3);
    let concurrent = {
        let mut m = before.manifest.clone();
        m.generation = 50;
        serde_json::to_vec(&m).unwrap()
    };
    let (s3, bucket, body) = (aws.s3.clone(), aws.bucket.clone(), concurrent.clone());
    racing.before_manifest = Some(Arc::new(move || {
        let (s3, bucket, body) = (s3.clone(), bucket.clone(), body.clone());
        Box::pin(async move {
            s3.put(
                &bucket,
                "index/manifest.json",
                ByteStream::from(body),
                "application/json",
                &Default::default(),
            )
            .await
            .unwrap();
        })
    }));
    let err = racing.run(false).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let (bytes, _) = aws
        .s3
        .get_bytes(&aws.bucket, "index/manifest.json", 1 << 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bytes, concurrent, "the loser must not touch the manifest");
    // Its snapshot was removed and nothing was recorded.
    let key = Settings::new(aws.bucket.clone()).generation_key(2);
    assert!(aws.s3.head(&aws.bucket, &key).await.is_err());
    assert_eq!(generation_rows(&db).await, vec![(1, false)]);
}

#[tokio::test]
async fn a_different_model_is_refused_until_a_rebuild_and_a_busy_lock_defers() {
    let db = TestDb::new().await.unwrap();
    let aws = LocalAws::new().await.unwrap();
    let indexer = indexer(&db, &aws, 3);
    analyze(&db, "interview", "links", "non-building").await;
    let first = published(indexer.run(false).await.unwrap());

    // A manifest made with another model.
    let mut foreign = manifest_now(&aws).await.unwrap().manifest;
    foreign.embedding_model = "another-encoder".into();
    aws.s3
        .put(
            &aws.bucket,
            "index/manifest.json",
            ByteStream::from(serde_json::to_vec(&foreign).unwrap()),
            "application/json",
            &Default::default(),
        )
        .await
        .unwrap();
    analyze(&db, "interview", "venue-factors", "spa").await;
    let err = indexer.run(false).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("another-encoder"), "{text}");
    assert!(text.contains("rebuild"), "{text}");
    assert!(!err.is_retryable());
    assert_eq!(manifest_now(&aws).await.unwrap().manifest, foreign);

    // Another writer holds the lock: busy, and the function fails the whole batch.
    let holder = db.cfg.connect().await.unwrap();
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&WRITER_LOCK])
        .await
        .unwrap();
    assert_eq!(indexer.run(true).await.unwrap(), Outcome::Busy);
    let response = index_fn::handle_sqs(&indexer, sqs_batch(&["{}", "{}"])).await;
    assert_eq!(response.batch_item_failures.len(), 2);
    drop(holder);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // A rebuild takes the chunks' model.
    let rebuilt = published(indexer.run(true).await.unwrap());
    assert_eq!(rebuilt.generation, 2);
    assert!(rebuilt.rebuilt);
    assert_eq!(rebuilt.embedding_model, first.embedding_model);
    assert_eq!(nonzero(&rebuilt.counts), expected_counts(&db).await);
    assert_eq!(rebuilt.high_water_mark, max_chunk_id(&db).await);
}

#[tokio::test]
async fn a_writer_killed_before_the_manifest_swap_leaves_the_old_generation_and_the_next_run_completes()
 {
    let db = TestDb::new().await.unwrap();
    let aws = LocalAws::new().await.unwrap();
    analyze(&db, "interview", "links", "non-building").await;
    let first = published(indexer(&db, &aws, 3).run(false).await.unwrap());
    let before = manifest_now(&aws).await.unwrap();

    // The run stops for good after uploading its snapshot, before the manifest swap: it is
    // cancelled there, as a Lambda timeout would end it.
    analyze(&db, "interview", "common-factors", "hotel").await;
    let mut killed = indexer(&db, &aws, 3);
    let (reached_tx, reached_rx) = tokio::sync::oneshot::channel::<()>();
    let reached = Arc::new(std::sync::Mutex::new(Some(reached_tx)));
    killed.before_manifest = Some(Arc::new(move || {
        if let Some(tx) = reached.lock().unwrap().take() {
            let _ = tx.send(());
        }
        Box::pin(std::future::pending::<()>())
    }));
    let run = tokio::spawn(async move { killed.run(false).await });
    reached_rx.await.unwrap();
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());

    // Readers still get the old generation.
    assert_eq!(manifest_now(&aws).await.unwrap(), before);
    assert_eq!(
        generation_rows(&db).await,
        vec![(first.generation as i64, false)]
    );

    // The next run is not kept out by the killed one's lock and publishes every chunk.
    let next = published(indexer(&db, &aws, 3).run(false).await.unwrap());
    assert!(next.generation > first.generation);
    assert_eq!(next.high_water_mark, max_chunk_id(&db).await);
    assert_eq!(nonzero(&next.counts), nonzero(&expected_counts(&db).await));
}

#[tokio::test]
async fn index_messages_processed_concurrently_lose_no_chunk() {
    let db = TestDb::new().await.unwrap();
    let aws = LocalAws::new().await.unwrap();
    analyze(&db, "interview", "links", "non-building").await;
    analyze(&db, "design", "structured-audit", "hotel").await;
    // Two writers at once: one publishes, the other is busy (its message comes back) or
    // finds the work done.
    let (a, b) = (indexer(&db, &aws, 3), indexer(&db, &aws, 3));
    let (ra, rb) = tokio::join!(a.run(false), b.run(false));
    let outcomes = [ra.unwrap(), rb.unwrap()];
    let published_runs = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Published(_)))
        .count();
    assert_eq!(published_runs, 1, "{outcomes:?}");
    // Whatever the loser's message finds when it comes back, every chunk is served.
    analyze(&db, "interview", "common-factors", "hotel").await;
    let retried = indexer(&db, &aws, 3).run(false).await.unwrap();
    let report = published(retried);
    assert_eq!(report.high_water_mark, max_chunk_id(&db).await);
    assert_eq!(
        nonzero(&report.counts),
        nonzero(&expected_counts(&db).await)
    );
}

#[tokio::test]
async fn an_index_built_from_another_database_is_neither_extended_nor_served() {
    let aws = LocalAws::new().await.unwrap();
    let ours = TestDb::new().await.unwrap();
    analyze(&ours, "interview", "links", "non-building").await;
    published(indexer(&ours, &aws, 3).run(false).await.unwrap());
    let manifest = manifest_now(&aws).await.unwrap().manifest;
    let id = common::db::database_id(&ours.pool.get().await.unwrap())
        .await
        .unwrap();
    assert_eq!(manifest.database_id.as_deref(), Some(id.as_str()));

    // Another database (recreated, or another deployment's) pointed at the same bucket.
    let other = TestDb::new().await.unwrap();
    let conn = other.pool.get().await.unwrap();
    conn.execute("UPDATE deployment SET database_id = gen_random_uuid()", &[])
        .await
        .unwrap();
    analyze(&other, "interview", "common-factors", "hotel").await;
    let err = indexer(&other, &aws, 3).run(false).await.unwrap_err();
    assert!(err.to_string().contains("another database"), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(manifest_now(&aws).await.unwrap().manifest, manifest);

    // Its searches do not read the foreign snapshot; a rebuild makes the index its own.
    let dir = tempfile::tempdir().unwrap();
    let reader = open_published(&aws, &manifest, &dir).await;
    let searcher = common::search::Searcher::new(other.pool.clone(), super::analyze::engines().0);
    let served = common::search::Served {
        reader: &reader,
        generation: manifest.generation,
        high_water_mark: manifest.high_water_mark,
        embedding_model: &manifest.embedding_model,
        database_id: manifest.database_id.as_deref(),
    };
    let results = searcher
        .search(
            Some(served),
            &common::search::SearchRequest::new("почему гости выбирают отель"),
        )
        .await
        .unwrap();
    assert!(
        results
            .freshness
            .warning
            .unwrap()
            .contains("another database")
    );
    assert_eq!(results.freshness.generation, None);
    assert!(!results.hits.is_empty());
    let rebuilt = published(indexer(&other, &aws, 3).run(true).await.unwrap());
    assert!(rebuilt.rebuilt);
    assert_ne!(
        manifest_now(&aws).await.unwrap().manifest.database_id,
        manifest.database_id
    );
}

#[tokio::test]
async fn an_index_rebuilt_before_any_chunk_takes_the_model_of_the_first_chunks() {
    // `vox index --rebuild` on an empty database publishes an index that records no model;
    // the next run must not refuse the first chunks for it.
    let db = TestDb::new().await.unwrap();
    let aws = LocalAws::new().await.unwrap();
    let indexer = indexer(&db, &aws, 3);
    let empty = published(indexer.run(true).await.unwrap());
    assert_eq!(empty.embedding_model, "");

    analyze(&db, "interview", "links", "non-building").await;
    let next = published(indexer.run(false).await.unwrap());
    assert!(!next.embedding_model.is_empty(), "{next:?}");
    assert_eq!(nonzero(&next.counts), expected_counts(&db).await);
    assert_eq!(next.high_water_mark, max_chunk_id(&db).await);
}

#[tokio::test]
async fn a_configuration_added_after_publishing_makes_the_next_run_a_rebuild() {
    let db = TestDb::new().await.unwrap();
    let aws = LocalAws::new().await.unwrap();
    let indexer = indexer(&db, &aws, 3);
    assert!(analyze(&db, "design", "structured-audit", "hotel").await > 0);
    let first = published(indexer.run(false).await.unwrap());
    assert!(!first.rebuilt);
    let total = max_chunk_id(&db).await;

    // A migration adds a configuration holding every chunk, old ones included.
    let conn = db.pool.get().await.unwrap();
    conn.execute(
        "INSERT INTO index_config (index_config_id, name, description, corpus)
         VALUES (99, 'everything', 'every chunk', 'both')",
        &[],
    )
    .await
    .unwrap();
    let stored: i64 = conn
        .query_one("SELECT count(*) FROM chunk", &[])
        .await
        .unwrap()
        .get(0);
    let second = published(indexer.run(false).await.unwrap());
    assert!(second.rebuilt, "{second:?}");
    assert_eq!(second.counts.get("everything"), Some(&(stored as u64)));
    let mut expected = expected_counts(&db).await;
    expected.insert("everything".into(), stored as u64);
    assert_eq!(nonzero(&second.counts), expected);
    assert_eq!(second.high_water_mark, total);
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_now(&aws).await.expect("a manifest").manifest;
    let reader = open_published(&aws, &manifest, &dir).await;
    let (chunk_id, embedding) = first_chunk(&db, "structured-audit", 0).await;
    assert_finds_itself(&reader, 99, chunk_id, &embedding);

    // Once it is in the index, runs are incremental again.
    assert!(matches!(
        indexer.run(false).await.unwrap(),
        Outcome::UpToDate { .. }
    ));
}
