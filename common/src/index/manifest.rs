//! Where index generations are published, and the manifest that names the served one: the
//! writer's settings (bucket, prefix, how it builds), the manifest's shape, and its
//! conditional read and write. Readers need this much; only the writer needs
//! [`super::publish`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DEFAULT_N_TREES;
use crate::config::{self, ConfigError};
use crate::storage::{Precondition, S3Store};
use crate::{Error, Result};

/// The dimension of every embedding the index holds.
pub const DIMS: usize = 512;

/// The most the writer's environment may grow to unless `VOX_INDEX_MAP_SIZE_BYTES` says.
pub const DEFAULT_MAP_SIZE: usize = 4 << 30;

/// Snapshots kept on S3 unless `VOX_INDEX_KEEP_GENERATIONS` says.
pub const DEFAULT_KEEP_GENERATIONS: usize = 3;

/// Chunks read from PostgreSQL per query.
pub const DEFAULT_BATCH_SIZE: i64 = 2_000;

/// The PostgreSQL advisory lock key held by the one writer ("vox_idx").
pub const WRITER_LOCK: i64 = 0x0076_6f78_5f69_6478;

/// A manifest is a few hundred bytes; anything much larger is not one.
const MANIFEST_MAX_BYTES: u64 = 1 << 20;

/// Where the writer publishes, and how it builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `VOX_INDEX_BUCKET` (required).
    pub bucket: String,
    /// `VOX_INDEX_PREFIX` (default `index/`); ends with `/` unless empty.
    pub prefix: String,
    /// `VOX_INDEX_KEEP_GENERATIONS` (default 3, at least 1): snapshots kept on S3.
    pub keep_generations: usize,
    /// `VOX_INDEX_MAP_SIZE_BYTES` (default 4 GiB): the most the environment may grow to.
    pub map_size: usize,
    /// `VOX_INDEX_N_TREES` (default [`DEFAULT_N_TREES`], at least 1).
    pub n_trees: usize,
    /// Chunks per PostgreSQL query (default 2,000).
    pub batch_size: i64,
    /// `VOX_INDEX_TMP_DIR`: where the run's temp dir is made (default the OS temp dir).
    pub tmp_dir: Option<PathBuf>,
}

impl Settings {
    /// Defaults for a bucket.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: "index/".into(),
            keep_generations: DEFAULT_KEEP_GENERATIONS,
            map_size: DEFAULT_MAP_SIZE,
            n_trees: DEFAULT_N_TREES,
            batch_size: DEFAULT_BATCH_SIZE,
            tmp_dir: None,
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        let mut settings = Self::new(config::required("VOX_INDEX_BUCKET")?);
        settings.prefix = normalize_prefix(&config::or_default("VOX_INDEX_PREFIX", "index/")?);
        settings.keep_generations =
            config::parsed_or("VOX_INDEX_KEEP_GENERATIONS", DEFAULT_KEEP_GENERATIONS)?;
        if settings.keep_generations == 0 {
            return Err(ConfigError::Invalid {
                var: "VOX_INDEX_KEEP_GENERATIONS",
                reason: "must be at least 1 (the generation the manifest names)".into(),
            });
        }
        settings.map_size = config::parsed_or("VOX_INDEX_MAP_SIZE_BYTES", DEFAULT_MAP_SIZE)?;
        if settings.map_size < 1 << 20 {
            return Err(ConfigError::Invalid {
                var: "VOX_INDEX_MAP_SIZE_BYTES",
                reason: format!("{} bytes is too small (at least 1 MiB)", settings.map_size),
            });
        }
        settings.n_trees = config::parsed_or("VOX_INDEX_N_TREES", DEFAULT_N_TREES)?;
        if settings.n_trees == 0 {
            return Err(ConfigError::Invalid {
                var: "VOX_INDEX_N_TREES",
                reason: "must be at least 1".into(),
            });
        }
        settings.tmp_dir = config::optional("VOX_INDEX_TMP_DIR")?.map(PathBuf::from);
        Ok(settings)
    }

    /// A prefix normalised to end with `/` (unless empty).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = normalize_prefix(prefix);
        self
    }

    pub fn manifest_key(&self) -> String {
        format!("{}manifest.json", self.prefix)
    }

    pub fn generation_key(&self, generation: u64) -> String {
        format!("{}generations/{generation:08}/index.mdb", self.prefix)
    }
}

fn normalize_prefix(prefix: &str) -> String {
    let prefix = prefix.trim().trim_start_matches('/');
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    }
}

/// The manifest object: what readers load, and where the next writer starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub generation: u64,
    /// The highest chunk id in the snapshot's input (chunks above it are not indexed yet).
    pub high_water_mark: i64,
    /// Items per configuration, by `index_config.name`.
    pub counts: BTreeMap<String, u64>,
    pub embedding_model: String,
    pub dims: usize,
    /// Lowercase hex SHA-256 of the snapshot object.
    pub checksum: String,
    pub size_bytes: u64,
    /// The snapshot's key in the same bucket.
    pub object_key: String,
    pub created_at: DateTime<Utc>,
    /// The identity of the database the snapshot was built from (`deployment.database_id`);
    /// absent in manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_id: Option<String>,
}

/// The manifest as read, with the ETag a conditional write must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentManifest {
    pub manifest: Manifest,
    pub etag: String,
}

/// Reads `key`; `None` if there is no manifest yet. A manifest that does not parse is an
/// [`Error::Index`].
pub async fn read_manifest(
    s3: &S3Store,
    bucket: &str,
    key: &str,
) -> Result<Option<CurrentManifest>> {
    let Some((bytes, etag)) = s3.get_bytes(bucket, key, MANIFEST_MAX_BYTES).await? else {
        return Ok(None);
    };
    let manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Index {
        reason: format!("the manifest s3://{bucket}/{key} is not valid: {e}"),
    })?;
    Ok(Some(CurrentManifest { manifest, etag }))
}

/// Replaces the manifest at `key` only if its ETag is still `expected` (or, for `None`, if
/// there is none yet). Returns the new ETag; a lost race is a retryable [`Error::Storage`]
/// and writes nothing.
pub async fn write_manifest(
    s3: &S3Store,
    bucket: &str,
    key: &str,
    manifest: &Manifest,
    expected: Option<&str>,
) -> Result<String> {
    let body = serde_json::to_vec_pretty(manifest).map_err(|e| Error::Index {
        reason: format!("cannot serialize the manifest: {e}"),
    })?;
    let condition = match expected {
        Some(etag) => Precondition::IfMatch(etag.to_owned()),
        None => Precondition::IfAbsent,
    };
    match s3
        .put_if(
            bucket,
            key,
            ByteStream::from(body),
            "application/json",
            &condition,
        )
        .await?
    {
        Some(etag) => Ok(etag),
        None => Err(lost_race(
            bucket,
            key,
            "the manifest changed since it was read: another writer published first",
        )),
    }
}

pub(super) fn lost_race(bucket: &str, key: &str, reason: &str) -> Error {
    Error::Storage {
        bucket: bucket.into(),
        key: key.into(),
        retryable: true,
        source: Box::new(std::io::Error::other(reason.to_owned())),
    }
}
