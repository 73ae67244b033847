//! The index readers against PostgreSQL and S3 on moto: the served generation follows the
//! writer's manifest, snapshots taken before a swap keep working, corrupt snapshots are
//! refused once, and polling is rate limited and single-flight. Chunks get synthetic unit
//! embeddings, so no sentence encoder is needed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use common::db::chunk::{self, NewChunk};
use common::index::publish::{Manifest, Settings, read_manifest};
use common::index::reader::{ReaderSettings, Refresh, ServedIndex, Snapshot};
use common::index::sha256_file;
use common::storage::Fetched;
use vox_tests::TestDb;
use vox_tests::aws::LocalAws;

use super::index::{indexer, published};

const MODEL: &str = "synthetic-512";
const DIMS: usize = 512;
const HOUR: Duration = Duration::from_secs(3600);

/// A pseudo-random unit vector (xorshift), different for each seed.
fn unit_vector(seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v: Vec<f32> = (0..DIMS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.iter_mut().for_each(|a| *a /= norm);
    v
}

/// Stores one new `links` report with `n` chunks; returns their ids and embeddings.
async fn add_chunks(db: &TestDb, n: usize) -> Vec<(i64, Vec<f32>)> {
    let conn = db.pool.get().await.unwrap();
    let file = vox_tests::unique_name("report");
    let transcription_id: i64 = conn
        .query_one(
            "INSERT INTO transcription (transcription_text, audio_file_name, text_sha256)
             VALUES ('text', $1, sha256(convert_to($1, 'UTF8'))) RETURNING transcription_id",
            &[&file],
        )
        .await
        .unwrap()
        .get(0);
    let audit_id: i64 = conn
        .query_one(
            "INSERT INTO audit (audit, audit_date, transcription_id, report_type_id,
                                building_id, pass, kind)
             SELECT 'report', current_date, $1, brt.report_type_id, brt.building_id, 1,
                    'narrative'
             FROM buildings_report_type brt JOIN report_type rt USING (report_type_id)
             WHERE rt.code = 'links' ORDER BY brt.building_id LIMIT 1
             RETURNING audit_id",
            &[&transcription_id],
        )
        .await
        .unwrap()
        .get(0);
    let chunks: Vec<NewChunk> = (0..n)
        .map(|i| NewChunk {
            seq: i as i32,
            text: format!("passage {i}"),
            start_char: 0,
            end_char: 10,
            embedding: unit_vector(audit_id as u64 * 1_000 + i as u64),
        })
        .collect();
    chunk::replace_for_audit(&conn, audit_id, &chunks, MODEL)
        .await
        .unwrap();
    let stored: Vec<(i64, Vec<f32>)> = chunk::for_audit(&conn, audit_id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.chunk_id, c.embedding))
        .collect();
    assert_eq!(stored.len(), n);
    stored
}

async fn links_config(db: &TestDb) -> u16 {
    let conn = db.pool.get().await.unwrap();
    let id: i16 = conn
        .query_one(
            "SELECT index_config_id FROM index_config WHERE name = 'links'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    id as u16
}

fn reader_settings(aws: &LocalAws, cache: &tempfile::TempDir, poll: Duration) -> ReaderSettings {
    let mut settings = ReaderSettings::new(aws.bucket.clone());
    settings.poll_interval = poll;
    settings.cache_dir = Some(cache.path().to_path_buf());
    settings
}

async fn open(aws: &LocalAws, cache: &tempfile::TempDir, poll: Duration) -> ServedIndex {
    ServedIndex::open(aws.s3.clone(), reader_settings(aws, cache, poll))
        .await
        .unwrap()
}

fn assert_finds(snapshot: &Snapshot, config: u16, chunks: &[(i64, Vec<f32>)]) {
    for (chunk_id, embedding) in chunks {
        let hits = snapshot.reader.search(config, embedding, 3, None).unwrap();
        assert_eq!(
            hits.first().map(|h| h.0),
            Some(*chunk_id),
            "generation {}: {hits:?}",
            snapshot.manifest.generation
        );
        assert!(hits[0].1 > 0.999, "{hits:?}");
    }
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

async fn manifest_now(aws: &LocalAws) -> Manifest {
    read_manifest(&aws.s3, &aws.bucket, "index/manifest.json")
        .await
        .unwrap()
        .expect("a manifest")
        .manifest
}

async fn put_manifest(aws: &LocalAws, manifest: &Manifest) {
    aws.s3
        .put(
            &aws.bucket,
            "index/manifest.json",
            ByteStream::from(serde_json::to_vec(manifest).unwrap()),
            "application/json",
            &Default::default(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn without_a_manifest_nothing_is_served_and_every_chunk_lags() {
    let db = TestDb::new().await.unwrap();
    let aws = LocalAws::new().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    add_chunks(&db, 5).await;

    let index = open(&aws, &cache, HOUR).await;

    assert!(index.current().is_none());
    assert_eq!(index.downloads(), 0);
    let lag = index.lag(&db.pool.get().await.unwrap()).await.unwrap();
    assert_eq!(lag.generation, None);
    assert_eq!(lag.high_water_mark, 0);
    assert_eq!(lag.chunks_not_indexed, 5);
    assert!(lag.newest_unindexed_at.is_some());
    assert_eq!(
        index.refresh().await.unwrap(),
        Refresh::Unchanged { generation: None }
    );
    assert_eq!(files_in(cache.path()), 0);
}

#[tokio::test]
async fn the_manifest_is_read_again_only_when_it_changed() {
    let aws = LocalAws::new().await.unwrap();
    let (bucket, key) = (aws.bucket.as_str(), "index/manifest.json");
    assert_eq!(
        aws.s3
            .get_bytes_if_changed(bucket, key, 1024, None)
            .await
            .unwrap(),
        Fetched::Missing
    );
    let no_metadata = Default::default();
    let put = |body: &'static [u8]| {
        aws.s3.put(
            bucket,
            key,
            ByteStream::from_static(body),
            "application/json",
            &no_metadata,
        )
    };
    let first = put(b"one").await.unwrap();
    let Fetched::Found { bytes, etag } = aws
        .s3
        .get_bytes_if_changed(bucket, key, 1024, None)
        .await
        .unwrap()
    else {
        panic!("the object is there");
    };
    assert_eq!(
        (bytes.as_slice(), etag.as_str()),
        (&b"one"[..], first.as_str())
    );
    assert_eq!(
        aws.s3
            .get_bytes_if_changed(bucket, key, 1024, Some(&etag))
            .await
            .unwrap(),
        Fetched::NotModified
    );
    let second = put(b"two").await.unwrap();
    assert_eq!(
        aws.s3
            .get_bytes_if_changed(bucket, key, 1024, Some(&etag))
            .await
            .unwrap(),
        Fetched::Found {
            bytes: b"two".to_vec(),
            etag: second
        }
    );
}

#[tokio::test]
async fn a_published_generation_is_served_and_swapped_while_old_snapshots_keep_working() {
    let db = TestDb::new().await.unwrap();
    let aws = LocalAws::new().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let writer = indexer(&db, &aws, 3);
    let links = links_config(&db).await;
    let old_chunks = add_chunks(&db, 30).await;
    let first = published(writer.run(false).await.unwrap());

    let index = open(&aws, &cache, HOUR).await;
    let served = index.current().expect("generation 1 is served");
    assert_eq!(served.manifest, manifest_now(&aws).await);
    assert_eq!(served.manifest.generation, 1);
    assert_eq!(served.manifest.embedding_model, MODEL);
    assert_finds(&served, links, &old_chunks);
    assert!(served.path().starts_with(cache.path()));
    assert_eq!(index.downloads(), 1);
    let conn = db.pool.get().await.unwrap();
    let lag = index.lag(&conn).await.unwrap();
    assert_eq!(lag.generation, Some(1));
    assert_eq!(lag.high_water_mark, first.high_water_mark);
    assert_eq!(lag.chunks_not_indexed, 0);
    assert_eq!(lag.newest_unindexed_at, None);

    // New chunks lag until the writer publishes them; nothing newer to download meanwhile.
    let new_chunks = add_chunks(&db, 12).await;
    let lag = index.lag(&conn).await.unwrap();
    assert_eq!(lag.chunks_not_indexed, 12);
    assert!(lag.newest_unindexed_at.is_some());
    assert_eq!(
        index.refresh().await.unwrap(),
        Refresh::Unchanged {
            generation: Some(1)
        }
    );
    assert_eq!(index.downloads(), 1);

    let second = published(writer.run(false).await.unwrap());
    assert_eq!(second.generation, 2);
    let before = index.current().unwrap();
    assert_eq!(
        index.refresh().await.unwrap(),
        Refresh::Swapped {
            from: Some(1),
            to: 2
        }
    );
    let now = index.current().unwrap();
    assert_eq!(now.manifest.generation, 2);
    assert_finds(&now, links, &old_chunks);
    assert_finds(&now, links, &new_chunks);
    let lag = index.lag(&conn).await.unwrap();
    assert_eq!(
        (lag.generation, lag.high_water_mark, lag.chunks_not_indexed),
        (Some(2), second.high_water_mark, 0)
    );

    // The snapshot taken before the swap still searches its own generation.
    assert_eq!(before.manifest.generation, 1);
    assert_finds(&before, links, &old_chunks);
    assert!(!before.reader.contains(links, new_chunks[0].0).unwrap());
    // Its file goes with the last holder (`served` and `before`).
    let old_file = before.path().to_path_buf();
    drop(served);
    assert!(old_file.exists());
    drop(before);
    assert!(!old_file.exists());
    assert_eq!(files_in(cache.path()), 1);

    assert_eq!(
        index.refresh().await.unwrap(),
        Refresh::Unchanged {
            generation: Some(2)
        }
    );
    assert_eq!(index.downloads(), 2);
}

#[tokio::test]
async fn a_corrupt_snapshot_is_refused_once_and_the_old_generation_stays_served() {
    let db = TestDb::new().await.unwrap();
    let aws = LocalAws::new().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let writer = indexer(&db, &aws, 3);
    let links = links_config(&db).await;
    let chunks = add_chunks(&db, 20).await;
    published(writer.run(false).await.unwrap());
    let index = open(&aws, &cache, Duration::ZERO).await;
    assert_eq!(index.generation(), Some(1));

    // Generation 2's object is altered after publication: same size, other bytes.
    add_chunks(&db, 5).await;
    let second = published(writer.run(false).await.unwrap());
    let (mut bytes, _) = aws
        .s3
        .get_bytes(&aws.bucket, &second.object_key, u64::MAX)
        .await
        .unwrap()
        .unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0xff;
    }
    aws.s3
        .put(
            &aws.bucket,
            &second.object_key,
            ByteStream::from(bytes),
            "application/octet-stream",
            &Default::default(),
        )
        .await
        .unwrap();

    let refused = index.refresh().await.unwrap();
    let Refresh::Refused { generation, reason } = &refused else {
        panic!("expected a refusal: {refused:?}");
    };
    assert_eq!(*generation, 2);
    assert!(reason.contains("SHA-256"), "{reason}");
    assert_eq!(index.generation(), Some(1));
    assert_finds(&index.current().unwrap(), links, &chunks);
    assert_eq!(index.downloads(), 2);
    // Not downloaded again, whether asked directly or by the poll.
    assert_eq!(index.refresh().await.unwrap(), refused);
    index.maybe_refresh().await;
    assert_eq!(index.downloads(), 2);
    assert_eq!(index.generation(), Some(1));
    assert_eq!(files_in(cache.path()), 1);

    // A manifest that names a file matching its checksum, but not an index.
    let garbage = cache.path().join("garbage.bin");
    std::fs::write(&garbage, vec![0x5a_u8; 64 * 1024]).unwrap();
    let key = Settings::new(aws.bucket.clone()).generation_key(3);
    aws.s3
        .put_file(
            &aws.bucket,
            &key,
            &garbage,
            "application/octet-stream",
            &Default::default(),
        )
        .await
        .unwrap();
    let mut third = manifest_now(&aws).await;
    third.generation = 3;
    third.object_key = key;
    third.checksum = sha256_file(&garbage).unwrap();
    third.size_bytes = 64 * 1024;
    std::fs::remove_file(&garbage).unwrap();
    put_manifest(&aws, &third).await;
    let refused = index.refresh().await.unwrap();
    let Refresh::Refused { generation, reason } = &refused else {
        panic!("expected a refusal: {refused:?}");
    };
    assert_eq!(*generation, 3);
    assert!(reason.contains("cannot be opened"), "{reason}");
    assert_eq!(index.refresh().await.unwrap(), refused);
    assert_eq!(index.downloads(), 3);
    assert_eq!(index.generation(), Some(1));
    assert_finds(&index.current().unwrap(), links, &chunks);

    // A rebuild publishes a good generation, which is served.
    let rebuilt = published(writer.run(true).await.unwrap());
    assert_eq!(
        index.refresh().await.unwrap(),
        Refresh::Swapped {
            from: Some(1),
            to: rebuilt.generation
        }
    );
    assert_finds(&index.current().unwrap(), links, &chunks);
    let lag = index.lag(&db.pool.get().await.unwrap()).await.unwrap();
    assert_eq!(lag.chunks_not_indexed, 0);
}

#[tokio::test]
async fn polling_waits_for_its_interval_and_only_one_caller_downloads() {
    let db = TestDb::new().await.unwrap();
    let aws = LocalAws::new().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let writer = indexer(&db, &aws, 3);
    let links = links_config(&db).await;
    add_chunks(&db, 10).await;
    published(writer.run(false).await.unwrap());
    let hourly = open(&aws, &cache, HOUR).await;
    let eager = open(&aws, &cache, Duration::ZERO).await;
    let new_chunks = add_chunks(&db, 10).await;
    published(writer.run(false).await.unwrap());

    // Within the interval, the manifest is not even read.
    hourly.maybe_refresh().await;
    assert_eq!(hourly.generation(), Some(1));

    // Many callers at once: one downloads, the others keep serving generation 1.
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let index = eager.clone();
            tokio::spawn(async move { index.maybe_refresh().await })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    assert_eq!(eager.generation(), Some(2));
    assert_eq!(eager.downloads(), 2);
    assert_finds(&eager.current().unwrap(), links, &new_chunks);

    // A manifest with another embedding model is served, and says so.
    let every_second = open(&aws, &cache, Duration::from_secs(1)).await;
    assert_eq!(every_second.generation(), Some(2));
    let mut foreign = manifest_now(&aws).await;
    foreign.generation = 3;
    foreign.embedding_model = "another-encoder".into();
    put_manifest(&aws, &foreign).await;
    every_second.maybe_refresh().await;
    assert_eq!(every_second.generation(), Some(2));
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    every_second.maybe_refresh().await;
    let served = every_second.current().unwrap();
    assert_eq!(served.manifest.generation, 3);
    assert_eq!(served.manifest.embedding_model, "another-encoder");
    assert_finds(&served, links, &new_chunks);

    hourly.maybe_refresh().await;
    assert_eq!(hourly.generation(), Some(1));
    assert_eq!(hourly.downloads(), 1);
    let _: Arc<Snapshot> = served;
}
