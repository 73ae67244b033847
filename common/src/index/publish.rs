//! The index writer run: new chunks in PostgreSQL become a new snapshot generation on S3,
//! published by swapping a small manifest object with a conditional write.
//!
//! One run, under a PostgreSQL session advisory lock (a second writer gets
//! [`Outcome::Busy`] and its message comes back later):
//!
//! 1. read `<prefix>manifest.json` and its ETag; download the snapshot it names into a temp
//!    dir as `data.mdb`, check its SHA-256, and open it as the writer's environment (or start
//!    an empty one: no manifest, or a rebuild);
//! 2. add the chunks above the manifest's high-water mark, in id order and in batches, to
//!    every configuration they belong to (their report type's, and the scenario-wide one
//!    unless the report type is excluded from it); every chunk must have the manifest's
//!    embedding model;
//! 3. build (seeded with the generation number), write a compacted snapshot, upload it as
//!    `<prefix>generations/<generation:08>/index.mdb` (only if that key is free), then
//!    replace the manifest with `If-Match` its old ETag (`If-None-Match: *` for the first):
//!    of two writers at most one wins, and the loser changes nothing;
//! 4. record the generation in `index_generation`, and delete the snapshots of generations
//!    older than the newest `keep_generations`.
//!
//! Until step 3's manifest write succeeds, readers keep the previous manifest, whatever
//! happens: a crash at any point leaves an unreferenced object at worst. Temp files live in
//! one temp dir removed when the run ends.
//!
//! Chunks are only ever added: a chunk deleted from PostgreSQL, or updated in place with a
//! new embedding, stays in the index as it was until a rebuild.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use chrono::Utc;
use futures::future::BoxFuture;
use serde::Serialize;
use tracing::{info, warn};

use super::{IndexWriter, sha256_file};
use crate::db::chunk::decode_embedding;
use crate::db::{Connection, PgPool};
use crate::storage::S3Store;
use crate::{Error, Result};

use super::manifest::lost_race;
pub use super::manifest::{
    CurrentManifest, DEFAULT_BATCH_SIZE, DEFAULT_KEEP_GENERATIONS, DEFAULT_MAP_SIZE, DIMS,
    Manifest, Settings, WRITER_LOCK, read_manifest, write_manifest,
};

/// What one run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A new generation is served.
    Published(Report),
    /// No chunk above the high-water mark: nothing was written.
    UpToDate {
        generation: Option<u64>,
        high_water_mark: i64,
    },
    /// Another writer holds the lock; try again later.
    Busy,
}

/// A published generation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub generation: u64,
    pub previous_generation: Option<u64>,
    pub rebuilt: bool,
    pub chunks_added: u64,
    pub high_water_mark: i64,
    pub counts: BTreeMap<String, u64>,
    pub embedding_model: String,
    pub size_bytes: u64,
    pub object_key: String,
    pub checksum: String,
    /// Older generations whose snapshots were deleted by this run.
    pub deleted_generations: Vec<u64>,
    pub elapsed_ms: u64,
}

/// Called between the snapshot upload and the manifest write (tests simulate a concurrent
/// writer there).
pub type Hook = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// The writer: built once per cold start, one [`run`](Self::run) per invocation.
#[derive(Clone)]
pub struct Indexer {
    pub pool: PgPool,
    pub s3: S3Store,
    pub settings: Settings,
    pub before_manifest: Option<Hook>,
}

impl fmt::Debug for Indexer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Indexer")
            .field("settings", &self.settings)
            .field("before_manifest", &self.before_manifest.is_some())
            .finish()
    }
}

/// The connection that holds the writer lock. Unless the lock was released and the
/// connection handed back ([`LockedConnection::release_to_pool`]), dropping it closes the
/// connection, which releases the lock: a run cancelled at any await (a timeout, a dropped
/// future) never returns a locked connection to the pool, where it would keep every later
/// writer busy.
struct LockedConnection(Option<Connection>);

impl LockedConnection {
    fn connection(&self) -> &Connection {
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("used after release"))
    }

    fn release_to_pool(mut self) {
        drop(self.0.take());
    }
}

impl Drop for LockedConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(Connection::take(conn));
        }
    }
}

/// The chunks above a mark with the configurations each belongs to (`index_config_chunk`:
/// those holding a report chunk's report type; the transcripts one for a transcript window).
const CHUNKS_SQL: &str = "
SELECT c.chunk_id, c.embedding, c.embedding_model,
       array_agg(m.index_config_id ORDER BY m.index_config_id) AS configs
FROM chunk c
JOIN index_config_chunk m ON m.chunk_id = c.chunk_id
WHERE c.chunk_id > $1
GROUP BY c.chunk_id
ORDER BY c.chunk_id
LIMIT $2";

/// What the writer found published when it started.
struct CurrentIndex {
    manifest: Option<Manifest>,
    /// The manifest object's ETag, for the conditional swap.
    etag: Option<String>,
    /// This database's identity, recorded in the new manifest.
    database_id: String,
}

/// A writer holding the current generation (empty when rebuilding).
struct SeededWriter {
    writer: IndexWriter,
    /// The embedding model of what it holds (`None`: nothing yet; the first chunk decides).
    model: Option<String>,
    high_water_mark: i64,
}

/// What one run added.
struct Delta {
    /// The last chunk id covered.
    high_water_mark: i64,
    added: u64,
}

/// Items per configuration, by configuration name.
async fn config_counts(conn: &Connection, writer: &IndexWriter) -> Result<BTreeMap<String, u64>> {
    let names: BTreeMap<u16, String> = conn
        .query("SELECT index_config_id, name FROM index_config", &[])
        .await?
        .iter()
        .filter_map(|r| {
            let id: i16 = r.get(0);
            Some((u16::try_from(id).ok()?, r.get::<_, String>(1)))
        })
        .collect();
    Ok(writer
        .counts()?
        .into_iter()
        .map(|(config, n)| {
            let name = names
                .get(&config)
                .cloned()
                .unwrap_or_else(|| format!("config-{config}"));
            (name, n)
        })
        .collect())
}

impl Indexer {
    pub fn new(pool: PgPool, s3: S3Store, settings: Settings) -> Self {
        Self {
            pool,
            s3,
            settings,
            before_manifest: None,
        }
    }

    /// One writer run; `rebuild` starts from an empty index and every chunk.
    pub async fn run(&self, rebuild: bool) -> Result<Outcome> {
        let started = Instant::now();
        let lock = LockedConnection(Some(self.pool.get().await?));
        let conn = lock.connection();
        let locked: bool = conn
            .query_one("SELECT pg_try_advisory_lock($1)", &[&WRITER_LOCK])
            .await?
            .get(0);
        if !locked {
            info!("another index writer holds the lock");
            lock.release_to_pool();
            return Ok(Outcome::Busy);
        }
        let result = self.run_locked(conn, rebuild, started).await;
        match conn
            .query_one("SELECT pg_advisory_unlock($1)", &[&WRITER_LOCK])
            .await
        {
            Ok(_) => lock.release_to_pool(),
            // Dropping the guard closes the connection, which releases the lock.
            Err(e) => {
                warn!(error = %crate::error::chain(&e), "could not release the index writer lock; closing the connection")
            }
        }
        result
    }

    /// The run under the writer lock, step by step: the current manifest, a writer seeded
    /// with its snapshot, the chunks added since its high-water mark, a new generation built
    /// and uploaded, the manifest swapped, then bookkeeping.
    async fn run_locked(
        &self,
        conn: &Connection,
        rebuild: bool,
        started: Instant,
    ) -> Result<Outcome> {
        let s = &self.settings;
        let current = self.current_manifest(conn, rebuild).await?;
        let previous = current.manifest.as_ref().map(|m| m.generation);
        let rebuild = match self.new_configuration(conn, &current).await? {
            Some(name) if !rebuild => {
                info!(
                    config = name,
                    "a configuration holds chunks the published index covers but is not in it: rebuilding"
                );
                true
            }
            _ => rebuild,
        };

        let base = s.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let tmp = crate::scratch::dir_in(&base)
            .and_then(|scratch| {
                tempfile::Builder::new()
                    .prefix("vox-index-")
                    .tempdir_in(scratch)
            })
            .map_err(|e| io_err(&base, e))?;
        let seeded = self.seeded_writer(&current, rebuild, tmp.path()).await?;
        let from = seeded.high_water_mark;
        let mut model = seeded.model;
        let writer = seeded.writer;
        let delta = self
            .add_chunks(conn, &writer, &mut model, from, rebuild)
            .await?;
        if delta.added == 0 && !rebuild {
            info!(generation = ?previous, high_water_mark = from, "the index is up to date");
            return Ok(Outcome::UpToDate {
                generation: previous,
                high_water_mark: from,
            });
        }

        let recorded: Option<i64> = conn
            .query_one("SELECT max(generation) FROM index_generation", &[])
            .await?
            .get(0);
        let generation = previous
            .unwrap_or(0)
            .max(recorded.and_then(|g| u64::try_from(g).ok()).unwrap_or(0))
            + 1;
        writer.build(generation)?;
        let snapshot = writer.snapshot(&tmp.path().join("index.mdb"))?;
        let counts = config_counts(conn, &writer).await?;
        drop(writer);

        let object_key = s.generation_key(generation);
        self.upload_generation(&object_key, &snapshot.path, generation, &snapshot.sha256)
            .await?;
        crate::chaos::point("index-uploaded");

        let manifest = Manifest {
            generation,
            high_water_mark: delta.high_water_mark,
            counts: counts.clone(),
            embedding_model: model
                .or_else(|| current.manifest.as_ref().map(|m| m.embedding_model.clone()))
                .unwrap_or_default(),
            dims: DIMS,
            checksum: snapshot.sha256.clone(),
            size_bytes: snapshot.size_bytes,
            object_key: object_key.clone(),
            created_at: Utc::now(),
            database_id: Some(current.database_id),
        };
        self.swap_manifest(&manifest, current.etag.as_deref())
            .await?;
        info!(
            generation,
            high_water_mark = delta.high_water_mark,
            chunks = delta.added,
            "published a new index generation"
        );
        crate::chaos::point("manifest-swapped");

        if let Err(e) = record_generation(conn, &manifest).await {
            warn!(error = %crate::error::chain(&e), generation, "published, but could not record the generation");
        }
        let deleted_generations = self.delete_old(conn, generation).await;

        Ok(Outcome::Published(Report {
            generation,
            previous_generation: previous,
            rebuilt: rebuild,
            chunks_added: delta.added,
            high_water_mark: delta.high_water_mark,
            counts,
            embedding_model: manifest.embedding_model,
            size_bytes: snapshot.size_bytes,
            object_key,
            checksum: snapshot.sha256,
            deleted_generations,
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }))
    }

    /// The published manifest and its ETag (for the conditional swap), and this database's
    /// identity, refusing an index built from another database unless rebuilding. A rebuild
    /// replaces whatever is there, even a manifest that does not parse.
    async fn current_manifest(&self, conn: &Connection, rebuild: bool) -> Result<CurrentIndex> {
        let s = &self.settings;
        let manifest_key = s.manifest_key();
        let (manifest, etag) = match read_manifest(&self.s3, &s.bucket, &manifest_key).await {
            Ok(Some(c)) => (Some(c.manifest), Some(c.etag)),
            Ok(None) => (None, None),
            Err(e @ Error::Index { .. }) if rebuild => {
                warn!(error = %e, "replacing a manifest that does not parse");
                let etag = self.s3.head(&s.bucket, &manifest_key).await?.etag;
                (None, Some(etag))
            }
            Err(e) => return Err(e),
        };
        let database_id = crate::db::database_id(conn).await?;
        if !rebuild
            && let Some(m) = &manifest
            && m.database_id.as_deref() != Some(database_id.as_str())
        {
            // A manifest without an identity predates it: whose it is cannot be told.
            let theirs = m.database_id.as_deref().unwrap_or("not recorded");
            return Err(Error::Index {
                reason: format!(
                    "the index at s3://{}/{manifest_key} was built from another database \
                     ({theirs}; this one is {database_id}): its chunk ids may name other chunks. \
                     Run `vox index --rebuild` to replace it with this database's index",
                    s.bucket
                ),
            });
        }
        Ok(CurrentIndex {
            manifest,
            etag,
            database_id,
        })
    }

    /// A configuration that holds chunks the published index covers but is not in it (one a
    /// migration added after that index was published): its run rebuilds from PostgreSQL, since
    /// adding only the chunks above the high-water mark would leave it without the older ones.
    async fn new_configuration(
        &self,
        conn: &Connection,
        current: &CurrentIndex,
    ) -> Result<Option<String>> {
        let Some(m) = &current.manifest else {
            return Ok(None);
        };
        let known: Vec<&str> = m.counts.keys().map(String::as_str).collect();
        let row = conn
            .query_opt(
                "SELECT ic.name FROM index_config ic
                 WHERE NOT (ic.name = ANY ($1))
                   AND EXISTS (SELECT 1 FROM index_config_chunk m
                               WHERE m.index_config_id = ic.index_config_id
                                 AND m.chunk_id <= $2)
                 ORDER BY ic.index_config_id LIMIT 1",
                &[&known, &m.high_water_mark],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// A writer in `tmp`, holding the current snapshot (downloaded and checked against the
    /// manifest's checksum) unless rebuilding, with the embedding model it holds and the
    /// high-water mark it covers.
    async fn seeded_writer(
        &self,
        current: &CurrentIndex,
        rebuild: bool,
        tmp: &Path,
    ) -> Result<SeededWriter> {
        let s = &self.settings;
        let env_dir = tmp.join("env");
        std::fs::create_dir_all(&env_dir).map_err(|e| io_err(&env_dir, e))?;
        let (model, high_water_mark) = match (&current.manifest, rebuild) {
            (Some(m), false) => {
                let data = env_dir.join("data.mdb");
                self.s3
                    .download_to(&s.bucket, &m.object_key, &data, u64::MAX)
                    .await?;
                let checksum = sha256_file(&data)?;
                if checksum != m.checksum {
                    return Err(Error::Index {
                        reason: format!(
                            "snapshot s3://{}/{} has SHA-256 {checksum}, the manifest says {}",
                            s.bucket, m.object_key, m.checksum
                        ),
                    });
                }
                // An index published before any chunk existed records no model ("" in the
                // manifest): its first chunks decide it, instead of every later run failing.
                let model = Some(m.embedding_model.clone()).filter(|m| !m.is_empty());
                (model, m.high_water_mark)
            }
            _ => (None, 0),
        };
        // `create` opens a downloaded snapshot too, with this map size (a compacted file
        // records only its own size).
        let writer = IndexWriter::create(&env_dir, s.map_size, DIMS)?
            .with_n_trees(s.n_trees)
            .with_tmp_dir(tmp);
        Ok(SeededWriter {
            writer,
            model,
            high_water_mark,
        })
    }

    /// Adds the chunks above `from`, in batches, to every configuration each belongs to;
    /// every chunk must have the index's embedding model (the first chunk decides it for an
    /// index that has none) and its dimensions.
    async fn add_chunks(
        &self,
        conn: &Connection,
        writer: &IndexWriter,
        model: &mut Option<String>,
        from: i64,
        rebuild: bool,
    ) -> Result<Delta> {
        let batch_size = self.settings.batch_size;
        let mut delta = Delta {
            high_water_mark: from,
            added: 0,
        };
        loop {
            let rows = conn
                .query(CHUNKS_SQL, &[&delta.high_water_mark, &batch_size])
                .await?;
            let mut by_config: BTreeMap<u16, Vec<(i64, Vec<f32>)>> = BTreeMap::new();
            for row in &rows {
                let chunk_id: i64 = row.get(0);
                let bytes: &[u8] = row.get(1);
                let chunk_model: &str = row.get(2);
                let configs: Vec<i16> = row.get(3);
                match model.as_deref() {
                    Some(m) if m != chunk_model => {
                        let reason = if rebuild {
                            format!(
                                "chunks were embedded with different models ({m:?} and {chunk_model:?} for chunk {chunk_id}): re-embed them with one model"
                            )
                        } else {
                            format!(
                                "chunk {chunk_id} was embedded with {chunk_model:?} but the index holds {m:?} embeddings: rebuild the index (`vox index --rebuild`, or invoke the index function with {{\"rebuild\": true}})"
                            )
                        };
                        return Err(Error::Index { reason });
                    }
                    Some(_) => {}
                    None => *model = Some(chunk_model.to_owned()),
                }
                let vector = decode_embedding(bytes);
                if vector.len() != DIMS {
                    return Err(Error::Index {
                        reason: format!(
                            "chunk {chunk_id} has {} dimensions, the index {DIMS}",
                            vector.len()
                        ),
                    });
                }
                let mut configs = configs.into_iter().filter_map(|c| u16::try_from(c).ok());
                if let Some(last) = configs.next_back() {
                    for config in configs {
                        by_config
                            .entry(config)
                            .or_default()
                            .push((chunk_id, vector.clone()));
                    }
                    by_config.entry(last).or_default().push((chunk_id, vector));
                }
                delta.high_water_mark = chunk_id;
            }
            for (config, items) in &by_config {
                let refs: Vec<(i64, &[f32])> =
                    items.iter().map(|(id, v)| (*id, v.as_slice())).collect();
                writer.add(*config, &refs)?;
            }
            delta.added += rows.len() as u64;
            if (rows.len() as i64) < batch_size {
                return Ok(delta);
            }
        }
    }

    /// Publishes `manifest` with a write conditional on the manifest this run read (`etag`;
    /// `None`: there was none). A request that failed after S3 stored the manifest (a lost
    /// response) published it after all; otherwise the snapshot this run uploaded, which
    /// nothing names, is deleted.
    async fn swap_manifest(&self, manifest: &Manifest, etag: Option<&str>) -> Result<()> {
        let s = &self.settings;
        let manifest_key = s.manifest_key();
        if let Some(hook) = &self.before_manifest {
            hook().await;
        }
        let Err(e) = write_manifest(&self.s3, &s.bucket, &manifest_key, manifest, etag).await
        else {
            return Ok(());
        };
        let published = read_manifest(&self.s3, &s.bucket, &manifest_key)
            .await
            .ok()
            .flatten()
            .is_some_and(|c| &c.manifest == manifest);
        if published {
            return Ok(());
        }
        // The object was made by this run (the upload refuses an existing key): nothing
        // refers to it.
        if let Err(d) = self.s3.delete(&s.bucket, &manifest.object_key).await {
            warn!(error = %crate::error::chain(&d), key = %manifest.object_key, "could not delete an unpublished snapshot");
        }
        Err(e)
    }

    /// Uploads a snapshot to a key no object holds yet. An object already there was left by
    /// a run that stopped before its manifest (this run holds the writer lock), unless the
    /// manifest now names it.
    async fn upload_generation(
        &self,
        key: &str,
        path: &Path,
        generation: u64,
        sha256: &str,
    ) -> Result<()> {
        let s = &self.settings;
        let metadata = HashMap::from([
            ("generation".to_owned(), generation.to_string()),
            ("sha256".to_owned(), sha256.to_owned()),
        ]);
        for attempt in 0..2 {
            let body = ByteStream::from_path(path).await.map_err(|e| Error::Io {
                path: path.display().to_string(),
                source: std::io::Error::other(e),
            })?;
            let stored = self
                .s3
                .client()
                .put_object()
                .bucket(&s.bucket)
                .key(key)
                .body(body)
                .content_type("application/octet-stream")
                .set_metadata(Some(metadata.clone()))
                .if_none_match("*")
                .send()
                .await;
            match stored {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
                    let named = read_manifest(&self.s3, &s.bucket, &s.manifest_key())
                        .await
                        .ok()
                        .flatten()
                        .is_some_and(|c| c.manifest.object_key == key);
                    if named || attempt > 0 {
                        return Err(lost_race(
                            &s.bucket,
                            key,
                            "the snapshot key of the next generation is taken: another writer published first",
                        ));
                    }
                    warn!(key, "deleting a snapshot left by an unfinished run");
                    self.s3.delete(&s.bucket, key).await?;
                }
                Err(e) => {
                    return Err(Error::Storage {
                        bucket: s.bucket.clone(),
                        key: key.into(),
                        retryable: true,
                        source: Box::new(e),
                    });
                }
            }
        }
        Err(lost_race(&s.bucket, key, "could not upload the snapshot"))
    }

    /// Deletes the snapshots of generations older than the newest `keep_generations`; returns
    /// those deleted. Failures are logged and left for the next run.
    async fn delete_old(&self, conn: &Connection, newest: u64) -> Vec<u64> {
        let s = &self.settings;
        let keep = u64::try_from(s.keep_generations.max(1)).unwrap_or(u64::MAX);
        let Some(last_old) = newest.checked_sub(keep) else {
            return Vec::new();
        };
        let last_old = i64::try_from(last_old).unwrap_or(i64::MAX);
        let rows = match conn
            .query(
                "SELECT generation, object_key FROM index_generation
                 WHERE deleted_at IS NULL AND generation <= $1 ORDER BY generation",
                &[&last_old],
            )
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %crate::error::chain(&e), "could not list old generations");
                return Vec::new();
            }
        };
        let mut deleted = Vec::new();
        for row in rows {
            let generation: i64 = row.get(0);
            let key: String = row.get(1);
            if let Err(e) = self.s3.delete(&s.bucket, &key).await {
                warn!(error = %crate::error::chain(&e), generation, "could not delete an old snapshot");
                continue;
            }
            match conn
                .execute(
                    "UPDATE index_generation SET deleted_at = now() WHERE generation = $1",
                    &[&generation],
                )
                .await
            {
                Ok(_) => deleted.push(u64::try_from(generation).unwrap_or(0)),
                Err(e) => {
                    warn!(error = %crate::error::chain(&e), generation, "deleted an old snapshot but could not record it");
                }
            }
        }
        deleted
    }
}

async fn record_generation(conn: &Connection, m: &Manifest) -> Result<()> {
    let generation = i64::try_from(m.generation).unwrap_or(i64::MAX);
    let size = i64::try_from(m.size_bytes).unwrap_or(i64::MAX);
    let counts = serde_json::to_value(&m.counts).unwrap_or_default();
    conn.execute(
        "INSERT INTO index_generation
             (generation, high_water_mark, counts, embedding_model, object_key, checksum,
              size_bytes, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (generation) DO UPDATE SET
             high_water_mark = EXCLUDED.high_water_mark, counts = EXCLUDED.counts,
             embedding_model = EXCLUDED.embedding_model, object_key = EXCLUDED.object_key,
             checksum = EXCLUDED.checksum, size_bytes = EXCLUDED.size_bytes,
             created_at = EXCLUDED.created_at, deleted_at = NULL",
        &[
            &generation,
            &m.high_water_mark,
            &counts,
            &m.embedding_model,
            &m.object_key,
            &m.checksum,
            &size,
            &m.created_at,
        ],
    )
    .await?;
    Ok(())
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_prefix() {
        let s = Settings::new("b").with_prefix("idx");
        assert_eq!(s.manifest_key(), "idx/manifest.json");
        assert_eq!(s.generation_key(7), "idx/generations/00000007/index.mdb");
        let s = Settings::new("b").with_prefix("");
        assert_eq!(s.manifest_key(), "manifest.json");
        assert_eq!(Settings::new("b").manifest_key(), "index/manifest.json");
    }

    #[test]
    fn the_manifest_round_trips_as_json() {
        let m = Manifest {
            generation: 2,
            high_water_mark: 41,
            counts: BTreeMap::from([("interview".to_owned(), 10)]),
            embedding_model: "use-multilingual".into(),
            dims: DIMS,
            checksum: "ab".repeat(32),
            size_bytes: 4096,
            object_key: "index/generations/00000002/index.mdb".into(),
            created_at: Utc::now(),
            database_id: Some("5f0e3c1a-0000-4000-8000-000000000001".into()),
        };
        let json = serde_json::to_string(&m).unwrap_or_default();
        let back: Manifest = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, m);
    }
}
