//! The readers' side of the published index: the snapshot the manifest names, downloaded,
//! verified and opened read-only, and replaced when the writer publishes a newer generation.
//!
//! [`ServedIndex`] is built once per cold start (the API, `vox search`, `vox ask`) and shared.
//! Searches take the current [`Snapshot`] ([`ServedIndex::current`]: an `Arc` cloned under a
//! lock held for no longer than that) and never wait for S3. A request handler calls
//! [`ServedIndex::maybe_refresh`], which looks at the manifest at most every
//! `poll_interval`, and only one caller at a time: the others keep serving what is there.
//!
//! A new generation is streamed to a temp file in `cache_dir`, checked against the
//! manifest's size and SHA-256, and opened before it is swapped in. A snapshot holder keeps
//! using the old generation until it drops its `Arc`; the old file is deleted when the last
//! one goes. A snapshot that fails its check or does not open is refused: the previous
//! generation stays served, and the same generation (and checksum) is not downloaded again.
//! A snapshot made with another embedding model or dimension is served as it is; its
//! [`Snapshot::manifest`] says so, and callers compare it with their encoder.
//!
//! Disk: the cache dir holds the served generation and, during a refresh, the next one
//! (twice the snapshot size at worst), plus any generation an old `Arc` still holds.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{debug, error, info, warn};

use super::manifest::{self, Manifest};
use super::{IndexReader, sha256_file};
use crate::config::{self, ConfigError};
use crate::db::GenericClient;
use crate::error::chain;
use crate::storage::{Fetched, S3Store};
use crate::{Error, Result};

/// How often [`ServedIndex::maybe_refresh`] looks at the manifest unless
/// `VOX_INDEX_POLL_SECONDS` says.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// A manifest is a few hundred bytes; anything much larger is not one.
const MANIFEST_MAX_BYTES: u64 = 1 << 20;

/// Chunks above the served high-water mark: not searchable yet.
const LAG_SQL: &str = "SELECT count(*), max(created_at) FROM chunk WHERE chunk_id > $1";

/// Where the readers find the published index, and how often they look for a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderSettings {
    /// `VOX_INDEX_BUCKET` (required).
    pub bucket: String,
    /// `VOX_INDEX_PREFIX` (default `index/`), normalised as the writer's
    /// ([`manifest::Settings::with_prefix`]).
    pub prefix: String,
    /// `VOX_INDEX_POLL_SECONDS` (default 5): the least time between two looks at the
    /// manifest by [`ServedIndex::maybe_refresh`]; 0 looks on every call.
    pub poll_interval: Duration,
    /// `VOX_INDEX_CACHE_DIR`: where snapshots are downloaded (default the OS temp dir).
    pub cache_dir: Option<PathBuf>,
}

impl ReaderSettings {
    /// Defaults for a bucket.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self::from(&manifest::Settings::new(bucket))
    }

    /// Reads `VOX_INDEX_BUCKET`, `VOX_INDEX_PREFIX`, `VOX_INDEX_POLL_SECONDS` and
    /// `VOX_INDEX_CACHE_DIR`; an error names the variable at fault.
    pub fn from_env() -> Result<Self, ConfigError> {
        let bucket = config::required("VOX_INDEX_BUCKET")?;
        let prefix = config::or_default("VOX_INDEX_PREFIX", "index/")?;
        let mut settings = Self::new(bucket).with_prefix(&prefix);
        let seconds: u64 =
            config::parsed_or("VOX_INDEX_POLL_SECONDS", DEFAULT_POLL_INTERVAL.as_secs())?;
        settings.poll_interval = Duration::from_secs(seconds);
        settings.cache_dir = config::optional("VOX_INDEX_CACHE_DIR")?.map(PathBuf::from);
        Ok(settings)
    }

    /// A prefix normalised as the writer's (ends with `/` unless empty).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = manifest::Settings::new(self.bucket.as_str())
            .with_prefix(prefix)
            .prefix;
        self
    }

    /// The manifest's key, as the writer publishes it.
    pub fn manifest_key(&self) -> String {
        manifest::Settings::new(self.bucket.as_str())
            .with_prefix(&self.prefix)
            .manifest_key()
    }
}

impl From<&manifest::Settings> for ReaderSettings {
    /// The bucket and prefix a writer publishes to, with the readers' defaults.
    fn from(writer: &manifest::Settings) -> Self {
        Self {
            bucket: writer.bucket.clone(),
            prefix: writer.prefix.clone(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            cache_dir: None,
        }
    }
}

/// One published generation, open for searches. Hold the `Arc` for as long as a request
/// needs a consistent index; its file is deleted when the last holder drops it.
#[derive(Debug)]
pub struct Snapshot {
    /// The manifest that named this generation (its embedding model and `dims` included).
    pub manifest: Manifest,
    pub reader: IndexReader,
    /// Declared after `reader`, so the environment is closed before the file is removed.
    file: tempfile::TempPath,
}

impl Snapshot {
    /// Where the downloaded snapshot lives while it is served.
    pub fn path(&self) -> &Path {
        &self.file
    }
}

/// What a [`ServedIndex::refresh`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Refresh {
    /// No newer generation (or no manifest): the served one, if any, stays.
    Unchanged { generation: Option<u64> },
    /// A newer generation is served.
    Swapped { from: Option<u64>, to: u64 },
    /// The manifest names a newer generation whose snapshot is corrupt or cannot be opened;
    /// the previous one stays served, and this one is not downloaded again.
    Refused { generation: u64, reason: String },
}

/// How far the served index is behind PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexLag {
    /// The served generation; `None` when nothing is served.
    pub generation: Option<u64>,
    /// The served snapshot's high-water mark (0 when nothing is served).
    pub high_water_mark: i64,
    /// Chunks above the high-water mark: stored but not in the snapshot (searches scan up to
    /// `VOX_SEARCH_FRESH_MAX` of them exactly until the next generation).
    pub chunks_not_indexed: i64,
    /// When the newest of them was stored.
    pub newest_unindexed_at: Option<DateTime<Utc>>,
}

impl IndexLag {
    /// The chunks stored above `high_water_mark`, the mark of `generation` (`None`, 0: no
    /// index, so every chunk lags).
    pub async fn measure(
        client: &impl GenericClient,
        generation: Option<u64>,
        high_water_mark: i64,
    ) -> Result<Self> {
        let row = client.query_one(LAG_SQL, &[&high_water_mark]).await?;
        Ok(IndexLag {
            generation,
            high_water_mark,
            chunks_not_indexed: row.get(0),
            newest_unindexed_at: row.get(1),
        })
    }
}

/// The published index as served to searches: cheap to clone and share between tasks.
#[derive(Debug, Clone)]
pub struct ServedIndex {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    s3: S3Store,
    settings: ReaderSettings,
    manifest_key: String,
    /// Locked only to clone or replace the `Arc`, never across an await.
    current: RwLock<Option<Arc<Snapshot>>>,
    /// Held for a whole refresh: one download at a time.
    poll: tokio::sync::Mutex<PollState>,
    last_check: Mutex<Instant>,
    downloads: AtomicU64,
}

#[derive(Debug, Default)]
struct PollState {
    /// The ETag and content of the manifest last read, for conditional reads.
    seen: Option<(String, Manifest)>,
    /// The last generation refused, so it is not downloaded on every poll.
    refused: Option<Refusal>,
}

#[derive(Debug)]
struct Refusal {
    generation: u64,
    checksum: String,
    reason: String,
}

/// Why a generation could not be loaded: its snapshot is bad (refuse it), or something that
/// may pass failed (S3 unreachable, a full disk: try again at the next poll).
enum LoadError {
    Refused(String),
    Failed(Error),
}

impl ServedIndex {
    /// Reads the manifest and loads the generation it names. With no manifest yet, or a
    /// snapshot refused (logged), nothing is served: [`current`](Self::current) is `None`
    /// until a refresh finds a good generation. Fails if S3 cannot be read, or the manifest
    /// does not parse.
    pub async fn open(s3: S3Store, settings: ReaderSettings) -> Result<Self> {
        let manifest_key = settings.manifest_key();
        let index = Self {
            inner: Arc::new(Inner {
                s3,
                settings,
                manifest_key,
                current: RwLock::new(None),
                poll: tokio::sync::Mutex::new(PollState::default()),
                last_check: Mutex::new(Instant::now()),
                downloads: AtomicU64::new(0),
            }),
        };
        index.refresh().await?;
        Ok(index)
    }

    /// The snapshot served now; `None` when there is no index yet.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The generation served now.
    pub fn generation(&self) -> Option<u64> {
        self.current().map(|s| s.manifest.generation)
    }

    pub fn settings(&self) -> &ReaderSettings {
        &self.inner.settings
    }

    /// Snapshots downloaded since [`open`](Self::open), refused ones included (a metric).
    pub fn downloads(&self) -> u64 {
        self.inner.downloads.load(Ordering::Relaxed)
    }

    /// Reads the manifest (a conditional read: nothing is transferred while it is unchanged)
    /// and, if it names a newer generation, downloads, verifies, opens and swaps it in.
    /// Waits for a refresh already running. Fails on a transient problem (S3, the disk) or
    /// a manifest that does not parse; the served snapshot stays either way.
    pub async fn refresh(&self) -> Result<Refresh> {
        let mut state = self.inner.poll.lock().await;
        self.mark_checked();
        self.refresh_locked(&mut state).await
    }

    /// [`refresh`](Self::refresh) if `poll_interval` has passed since the last look, and
    /// no other caller is refreshing (that one's result will do). Failures are logged.
    ///
    /// The caller that does refresh waits for the download; to keep even that request
    /// fast, run it in a task of its own (`tokio::spawn` on a clone).
    pub async fn maybe_refresh(&self) {
        if !self.due() {
            return;
        }
        let Ok(mut state) = self.inner.poll.try_lock() else {
            return;
        };
        // Another caller may have checked between our look at the clock and the lock.
        if !self.due() {
            return;
        }
        self.mark_checked();
        match self.refresh_locked(&mut state).await {
            Ok(outcome) => debug!(?outcome, "looked for a newer index generation"),
            Err(e) => warn!(
                error = %chain(&e),
                generation = ?self.generation(),
                "could not look for a newer index generation; serving the current one"
            ),
        }
    }

    /// How many chunks in PostgreSQL are above the served snapshot's high-water mark (all of
    /// them when nothing is served).
    pub async fn lag(&self, client: &impl GenericClient) -> Result<IndexLag> {
        let snapshot = self.current();
        IndexLag::measure(
            client,
            snapshot.as_ref().map(|s| s.manifest.generation),
            snapshot.as_ref().map_or(0, |s| s.manifest.high_water_mark),
        )
        .await
    }

    fn due(&self) -> bool {
        let last = *self
            .inner
            .last_check
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.elapsed() >= self.inner.settings.poll_interval
    }

    fn mark_checked(&self) {
        *self
            .inner
            .last_check
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    async fn refresh_locked(&self, state: &mut PollState) -> Result<Refresh> {
        let inner = &*self.inner;
        let bucket = inner.settings.bucket.as_str();
        let key = inner.manifest_key.as_str();
        let served = self.generation();
        let etag = state.seen.as_ref().map(|(etag, _)| etag.as_str());
        let fetched = inner
            .s3
            .get_bytes_if_changed(bucket, key, MANIFEST_MAX_BYTES, etag)
            .await?;
        let manifest = match fetched {
            Fetched::NotModified => match &state.seen {
                Some((_, manifest)) => manifest.clone(),
                None => return Ok(Refresh::Unchanged { generation: served }),
            },
            Fetched::Missing => {
                state.seen = None;
                if let Some(generation) = served {
                    warn!(
                        generation,
                        key, "the index manifest is gone; serving the last generation read"
                    );
                }
                return Ok(Refresh::Unchanged { generation: served });
            }
            Fetched::Found { bytes, etag } => {
                let manifest: Manifest =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Index {
                        reason: format!("the manifest s3://{bucket}/{key} is not valid: {e}"),
                    })?;
                state.seen = Some((etag, manifest.clone()));
                manifest
            }
        };

        if served.is_some_and(|g| manifest.generation <= g) {
            return Ok(Refresh::Unchanged { generation: served });
        }
        if let Some(refused) = &state.refused
            && refused.generation == manifest.generation
            && refused.checksum == manifest.checksum
        {
            return Ok(Refresh::Refused {
                generation: refused.generation,
                reason: refused.reason.clone(),
            });
        }

        let generation = manifest.generation;
        let checksum = manifest.checksum.clone();
        match self.load(manifest).await {
            Ok(snapshot) => {
                info!(
                    from = ?served,
                    to = generation,
                    high_water_mark = snapshot.manifest.high_water_mark,
                    embedding_model = %snapshot.manifest.embedding_model,
                    "serving a new index generation"
                );
                let snapshot = Arc::new(snapshot);
                let old = inner
                    .current
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .replace(snapshot);
                // Dropped outside the lock: the last holder closes the environment and
                // deletes the file.
                drop(old);
                state.refused = None;
                Ok(Refresh::Swapped {
                    from: served,
                    to: generation,
                })
            }
            Err(LoadError::Refused(reason)) => {
                error!(
                    generation,
                    served = ?served,
                    reason = %reason,
                    "refused an index snapshot; still serving the previous generation"
                );
                state.refused = Some(Refusal {
                    generation,
                    checksum,
                    reason: reason.clone(),
                });
                Ok(Refresh::Refused { generation, reason })
            }
            Err(LoadError::Failed(e)) => Err(e),
        }
    }

    /// Downloads the snapshot a manifest names into the cache dir, checks its size and
    /// SHA-256, and opens it.
    async fn load(&self, manifest: Manifest) -> Result<Snapshot, LoadError> {
        let inner = &*self.inner;
        let bucket = inner.settings.bucket.as_str();
        let key = manifest.object_key.as_str();
        let object = format!(
            "snapshot s3://{bucket}/{key} of generation {}",
            manifest.generation
        );
        let dir = inner
            .settings
            .cache_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let file = crate::scratch::dir_in(&dir)
            .and_then(|scratch| {
                tempfile::Builder::new()
                    .prefix("vox-index-")
                    .suffix(".mdb")
                    .tempfile_in(scratch)
            })
            .map_err(|e| {
                LoadError::Failed(Error::Io {
                    path: dir.display().to_string(),
                    source: e,
                })
            })?
            .into_temp_path();

        inner.downloads.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let written = match inner
            .s3
            .download_to(bucket, key, &file, manifest.size_bytes)
            .await
        {
            Ok(n) => n,
            Err(Error::ObjectTooLarge { .. }) => {
                return Err(LoadError::Refused(format!(
                    "{object} is larger than the {} bytes its manifest says",
                    manifest.size_bytes
                )));
            }
            Err(Error::ObjectNotFound { .. }) => {
                return Err(LoadError::Refused(format!("{object} does not exist")));
            }
            Err(e) => return Err(LoadError::Failed(e)),
        };
        if written != manifest.size_bytes {
            return Err(LoadError::Refused(format!(
                "{object} is {written} bytes, its manifest says {}",
                manifest.size_bytes
            )));
        }

        let path = file.to_path_buf();
        let expected = manifest.checksum.clone();
        let checked = tokio::task::spawn_blocking(move || verify_and_open(&path, &expected))
            .await
            .map_err(|e| {
                LoadError::Failed(Error::Index {
                    reason: format!("checking {object} did not finish: {e}"),
                })
            })?
            .map_err(LoadError::Failed)?;
        let reader = checked.map_err(|reason| LoadError::Refused(format!("{object} {reason}")))?;

        if reader.dims() != manifest.dims {
            warn!(
                generation = manifest.generation,
                snapshot_dims = reader.dims(),
                manifest_dims = manifest.dims,
                "the snapshot's dimension differs from its manifest's"
            );
        }
        debug!(
            generation = manifest.generation,
            bytes = written,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "downloaded and verified an index snapshot"
        );
        Ok(Snapshot {
            manifest,
            reader,
            file,
        })
    }
}

/// Checks a downloaded snapshot's SHA-256 and opens it; `Ok(Err(reason))` when the file is
/// bad (it will not get better), `Err` when it could not be read.
fn verify_and_open(path: &Path, expected: &str) -> Result<Result<IndexReader, String>> {
    let checksum = sha256_file(path)?;
    if !checksum.eq_ignore_ascii_case(expected) {
        return Ok(Err(format!(
            "has SHA-256 {checksum}, its manifest says {expected}"
        )));
    }
    // The file is what the writer uploaded: if it does not open now, it never will.
    Ok(IndexReader::open_snapshot(path).map_err(|e| format!("cannot be opened: {}", chain(&e))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_use_the_writers_prefix_and_keys() {
        let s = ReaderSettings::new("b").with_prefix("/idx");
        assert_eq!(s.prefix, "idx/");
        assert_eq!(s.manifest_key(), "idx/manifest.json");
        assert_eq!(
            ReaderSettings::new("b").manifest_key(),
            "index/manifest.json"
        );
        assert_eq!(
            ReaderSettings::new("b").poll_interval,
            DEFAULT_POLL_INTERVAL
        );
        let writer = manifest::Settings::new("w").with_prefix("p");
        let s = ReaderSettings::from(&writer);
        assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("w", "p/"));
        assert_eq!(s.manifest_key(), writer.manifest_key());
    }

    #[test]
    fn a_served_index_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<ServedIndex>();
        shareable::<Arc<Snapshot>>();
    }
}
