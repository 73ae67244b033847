//! The vector index: arroy's random-projection trees on heed (LMDB), behind a facade that
//! hides transactions and distance generics.
//!
//! One LMDB environment holds one arroy database; each search configuration
//! (`index_config.index_config_id`) is one arroy index (a `u16`), and an item id is the chunk
//! id in PostgreSQL, which stays the source of truth: the index can always be rebuilt from
//! `chunk.embedding`. Two more small databases record the dimension and the configurations
//! that exist, so that a configuration never built searches as empty rather than failing.
//!
//! The one writer ([`IndexWriter`]) adds and removes chunks, builds the trees of every
//! configuration that changed, and writes a compacted one-file copy of the environment
//! ([`IndexWriter::snapshot`]). Readers ([`IndexReader`]) open such a file read-only, without a
//! lock file, so it can live on a read-only file system.
//!
//! # Distance
//!
//! Embeddings are unit length, so cosine, dot product and Euclidean distance rank neighbours
//! identically; the choice only changes how arroy cuts the space into trees. We use
//! [`Cosine`]. Measured with the ignored test `distance_choice_by_recall` (20,000 512-d unit
//! vectors, 10 trees, k = 10, 100 held-out queries, the same `search_k` for all three):
//!
//! | data                        | `search_k`      | Cosine | Euclidean | DotProduct |
//! |-----------------------------|-----------------|--------|-----------|------------|
//! | 200 gaussian clusters       | k × trees × 5   | 0.982  | 0.959     | 0.982      |
//! | 200 gaussian clusters       | k × trees × 20  | 0.999  | 0.996     | 0.999      |
//! | uniform random              | k × trees × 5   | 0.066  | 0.061     | 0.068      |
//! | uniform random              | k × trees × 20  | 0.182  | 0.200     | 0.182      |
//!
//! `DotProduct` matches `Cosine` on unit vectors but rewrites every stored vector at each
//! build (its norm-padding preprocessing); Euclidean is no better and worse on clustered data.
//! Cosine's distance `(1 - cos) / 2` also converts back to the similarity exactly.
//!
//! # Search: a quantized scan, then an exact re-rank
//!
//! Each build also writes binary codes of the configurations it built (one bit a dimension:
//! is the item's unit vector above the configuration's mean vector in that dimension; 64
//! bytes an item at 512-d, with the item ids and the mean in one LMDB value per
//! configuration). A search computes the Hamming distance from the query's code to every
//! item's, in place in the memory-mapped snapshot, and scores the nearest `max(k × 50, 500,
//! items / 200)` of them exactly (cosine similarity from the stored vectors): see [`Rerank`],
//! [`RERANK_PER_ITEMS`]. A candidate set under half of a configuration is scored exactly by
//! arroy (the distance to every candidate: ~1.4 µs each, ~7 ms for 5,000); a larger one
//! filters the scan.
//!
//! arroy's trees serve snapshots written before the codes existed, and [`Rerank::Off`]: at
//! 1,000,000 clustered vectors they need far more effort than the codes for the same recall
//! (each candidate is an LMDB read of a whole vector, and the trees' candidates are a poor
//! shortlist when the neighbours sit in a wide cluster).
//!
//! Measured by `tests/benches/index.rs` at 1,000,000 512-d unit vectors in 200 wide gaussian
//! clusters (spread 2), 200 held-out queries, k = 10, on 2 cores shared with other builds (so
//! the milliseconds are loaded ones; the ratio is to the exact scan in the same run: brute
//! force over the vectors in memory, one thread):
//!
//! | method                                          | p50 ms | p50 / exact scan | recall@10 |
//! |-------------------------------------------------|--------|------------------|-----------|
//! | exact scan                                      | 774    | 1                | 1         |
//! | trees, search_k = k × 32 × 10 (the old default) | 20.3   | 0.026            | 0.468     |
//! | trees, search_k = k × 32 × 40                   | 48.5   | 0.063            | 0.762     |
//! | codes, re-rank 1,000                            | 29.0   | 0.038            | 0.867     |
//! | codes, re-rank 2,000                            | 37.6   | 0.049            | 0.943     |
//! | codes, re-rank 5,000 (the default here)         | 51-59  | 0.066-0.076      | 0.989     |
//! | codes, re-rank 10,000                           | 79.0   | 0.102            | 0.999     |
//!
//! Beside hannoy (HNSW on LMDB; `M` 16, `ef_construction` 100), at 100,000 of the same
//! vectors in the same run: hannoy reaches recall@10 0.986 at 1.04 ms (`ef_search` 64) and
//! 0.999 at 1.32 ms (128), the codes 0.956 at 2.4-3.6 ms (the default) and 0.986 at 3.7 ms
//! (re-rank 1,000): about 3.5× hannoy's latency at equal recall, for a build 33 times
//! faster (15.8 s against 522 s). hannoy at 1,000,000 is not measured yet (its build did not
//! finish in 70 minutes on the loaded machine).
//!
//! # Trees and `search_k`
//!
//! See [`DEFAULT_N_TREES`] and [`DEFAULT_SEARCH_K_FACTOR`] for the measured trade-off (before
//! the codes existed, with the trees as the only stage). Configurations of at most `dims`
//! items (512 here) are a single leaf, searched exactly.
//!
//! # Size
//!
//! A 512-d vector is a 2,052-byte LMDB value, just over the largest value LMDB keeps inline
//! on a 4 KiB page, so each vector takes a whole overflow page: the environment and its
//! snapshot are ~2.2× the raw vectors (444 MiB for 100,000 vectors and 32 trees; each tree
//! adds ~1.6 MiB). The codes add 68 bytes an item (~3%: 4,703 MiB for 1,000,000 vectors), and
//! the build reads every vector of a rebuilt configuration twice to write them. Lambda's default 512 MB of `/tmp` is not enough for a reader of 100,000
//! chunks plus a new generation, nor for the writer (environment + snapshot).
//!
//! # Caveats
//!
//! heed refuses to open the same file twice in one process ([`IndexReader::open_snapshot`] on
//! a path already open fails): open each snapshot once and share the reader (it is `Sync`).
//! Incremental builds insert into the existing trees without recomputing their split planes;
//! rebuild from PostgreSQL into a fresh environment if recall drifts after large changes.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use arroy::distances::Cosine;
use arroy::{Reader, Writer};
use heed::byteorder::BigEndian;
use heed::types::{Bytes, Str, U16, Unit};
use heed::{CommitOrAbort, CompactionOption, EnvFlags, EnvOpenOptions, MdbError, WithoutTls};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use roaring::RoaringBitmap;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

#[cfg(feature = "index-read")]
pub mod manifest;
#[cfg(feature = "index-write")]
pub mod publish;
#[cfg(feature = "index-read")]
pub mod reader;
#[cfg(test)]
mod tests;

/// The distance of every index (see the module documentation for why).
type Dist = Cosine;
type ArroyDb = arroy::Database<'static, Dist>;
type MetaDb = heed::Database<'static, Str, Bytes>;
type ConfigDb = heed::Database<'static, U16<BigEndian>, Unit>;
type CodesDb = heed::Database<'static, U16<BigEndian>, Bytes>;
type Env = heed::Env<WithoutTls>;

const ARROY_DB: &str = "arroy";
const META_DB: &str = "vox-meta";
const CONFIG_DB: &str = "vox-configs";
const CODES_DB: &str = "vox-codes";
const MAX_DBS: u32 = 4;
const KEY_DIMS: &str = "dims";
const KEY_DISTANCE: &str = "distance";

/// Trees built per configuration when not set with [`IndexWriter::with_n_trees`].
///
/// More trees give better recall for the same search effort, at the cost of build time.
/// Measured by `tests/benches/index.rs` on 100,000 512-d unit vectors in 200 wide gaussian
/// clusters (spread 2), recall@50 over 200 held-out queries at equal `search_k`:
///
/// | trees | build (2 shared cores) | search_k 8,000 | search_k 16,000 | search_k 32,000 |
/// |-------|------------------------|----------------|-----------------|-----------------|
/// | 8     | 10 s                   | 0.726          | 0.837           |                 |
/// | 16    | 21 s                   | 0.831          | 0.914           | 0.965           |
/// | 32    | 32-41 s                | 0.922          | 0.967           | 0.991           |
///
/// Incremental builds only insert the changed items into the existing trees.
pub const DEFAULT_N_TREES: usize = 32;

/// The default `search_k` is `k × n_trees × DEFAULT_SEARCH_K_FACTOR` (see [`SearchK`]).
///
/// arroy's own default (factor 1) is far too low here: leaves hold up to `dims` (512) items,
/// so a search must reach the best leaves of most trees. Measured (32 trees):
///
/// | data                                      | factor 1 | 2     | 5     | 10 (default) | 20    |
/// |-------------------------------------------|----------|-------|-------|--------------|-------|
/// | 1,000 uniform random, recall@10 (unit test) | 0.614  | 0.843 | 0.971 | 0.999        | 1.000 |
/// | 100,000 clustered (spread 2), recall@50   |          | 0.807 | 0.922 | 0.967        | 0.991 |
/// | 100,000 clustered (spread 1), recall@50 ¹ |          |       | 1.000 | 1.000        | 1.000 |
/// | 100,000 uniform random, recall@50         |          | 0.086 | 0.180 | 0.308        | 0.491 |
///
/// ¹ with 16 trees. At 100,000 items and k = 50 the default inspects 16,000 nodes, about
/// 20 ms a query on a loaded 2-core machine (factor 5: ~12 ms; factor 2: ~6 ms). Uniform random
/// vectors, which have no neighbourhood structure, are the worst case for any tree index.
pub const DEFAULT_SEARCH_K_FACTOR: usize = 10;

/// How many tree nodes arroy inspects per search: the recall/latency knob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchK {
    /// `k × n_trees × factor`, so the effort follows the number of results asked for.
    Factor(NonZeroUsize),
    /// A fixed number of nodes, whatever `k`.
    Fixed(NonZeroUsize),
}

impl Default for SearchK {
    fn default() -> Self {
        SearchK::Factor(NonZeroUsize::new(DEFAULT_SEARCH_K_FACTOR).unwrap_or(NonZeroUsize::MIN))
    }
}

impl SearchK {
    fn resolve(self, k: usize, n_trees: usize) -> NonZeroUsize {
        match self {
            SearchK::Fixed(n) => n,
            SearchK::Factor(factor) => {
                let n = k
                    .saturating_mul(n_trees.max(1))
                    .saturating_mul(factor.get());
                NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
            }
        }
    }
}

/// The least number of items the quantized stage hands to the exact re-rank.
///
/// Measured by `tests/benches/index.rs` at 100,000 clustered vectors (spread 2), 200
/// queries, on the loaded 2-core machine (exact scan: 21 ms a query):
///
/// | re-rank                     | k = 10: p50 ms | recall@10 | k = 50: recall@50 |
/// |-----------------------------|----------------|-----------|-------------------|
/// | 500 (the default at k = 10) | 2.4-3.6        | 0.956     | 0.905             |
/// | 1,000                       | 3.7            | 0.986     | 0.958             |
/// | 2,000                       | 6.1            | 0.997     | 0.983             |
/// | 2,500 (the default at k = 50) |              |           | 0.988             |
/// | 5,000                       | 12.1           | 0.999     | 0.996             |
pub const RERANK_MIN: usize = 500;

/// The quantized stage hands at least one item in `RERANK_PER_ITEMS` to the exact re-rank:
/// the more items, the more of them come between the query's code and its neighbours' codes.
///
/// Measured by `tests/benches/index.rs` at 1,000,000 clustered vectors (spread 2), recall of
/// the re-rank of a fixed number of items (latency in the module documentation; each item
/// re-ranked costs an LMDB read of its vector, 4-9 µs there on the loaded machine):
///
/// | re-rank                              | recall@10 | recall@50 |
/// |--------------------------------------|-----------|-----------|
/// | 1,000                                | 0.867     | 0.790     |
/// | 2,000                                | 0.943     | 0.906     |
/// | 5,000 (1 item in 200: the default)   | 0.989     | 0.979     |
/// | 10,000                               | 0.999     | 0.993     |
pub const RERANK_PER_ITEMS: usize = 200;

/// The default re-rank is `max(k × DEFAULT_RERANK_FACTOR, RERANK_MIN, items /
/// RERANK_PER_ITEMS)` items (see [`Rerank`]).
pub const DEFAULT_RERANK_FACTOR: usize = 50;

/// The quantized first stage: how many of its nearest items are scored exactly.
///
/// A configuration built by this version has binary codes (one bit a dimension: is the item's
/// unit vector above the mean of the configuration's); a search compares the query's code with
/// every item's (Hamming distance, 64 bytes an item at 512-d, in place in the snapshot), then
/// scores the nearest by cosine similarity from their stored vectors. Without codes (a
/// snapshot written before they existed), or with [`Rerank::Off`], the trees are searched with
/// [`SearchK`]; a candidate set under half of a configuration is scored exactly either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rerank {
    /// `max(k × factor, RERANK_MIN, items / RERANK_PER_ITEMS)` items.
    Factor(NonZeroUsize),
    /// `max(k, n)` items, whatever `k`.
    Fixed(NonZeroUsize),
    /// No quantized stage: the trees, with [`SearchK`].
    Off,
}

impl Rerank {
    /// Items to re-rank for `k` results among `items`; `None` when off.
    fn resolve(self, k: usize, items: u64) -> Option<usize> {
        let share = usize::try_from(items / RERANK_PER_ITEMS as u64).unwrap_or(usize::MAX);
        match self {
            Rerank::Factor(factor) => {
                Some(k.saturating_mul(factor.get()).max(RERANK_MIN).max(share))
            }
            Rerank::Fixed(n) => Some(n.get().max(k)),
            Rerank::Off => None,
        }
    }
}

impl Default for Rerank {
    fn default() -> Self {
        Rerank::Factor(NonZeroUsize::new(DEFAULT_RERANK_FACTOR).unwrap_or(NonZeroUsize::MIN))
    }
}

/// A set of chunk ids a search is restricted to (the result of a metadata filter).
///
/// Chunk ids that cannot be arroy items (negative or above `u32::MAX`) can never be in the
/// index and are dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Candidates(RoaringBitmap);

impl Candidates {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, chunk_id: i64) {
        if let Ok(item) = u32::try_from(chunk_id) {
            self.0.insert(item);
        }
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<i64> for Candidates {
    fn from_iter<I: IntoIterator<Item = i64>>(ids: I) -> Self {
        let mut set = Candidates::new();
        for id in ids {
            set.insert(id);
        }
        set
    }
}

impl<'a> FromIterator<&'a i64> for Candidates {
    fn from_iter<I: IntoIterator<Item = &'a i64>>(ids: I) -> Self {
        ids.into_iter().copied().collect()
    }
}

/// A compacted one-file copy of the index, as written by [`IndexWriter::snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    pub size_bytes: u64,
    /// Lowercase hex SHA-256 of the file, for the manifest and to check downloads.
    pub sha256: String,
}

/// The SHA-256 of a file as lowercase hex (what [`SnapshotInfo::sha256`] holds).
pub fn sha256_file(path: &Path) -> Result<String> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// The writer's side: one LMDB environment in a directory, written by one process at a time.
pub struct IndexWriter {
    store: Store,
    n_trees: usize,
    tmp_dir: Option<PathBuf>,
}

impl fmt::Debug for IndexWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexWriter")
            .field("location", &self.store.location)
            .field("dims", &self.store.dims)
            .field("n_trees", &self.n_trees)
            .field("tmp_dir", &self.tmp_dir)
            .finish()
    }
}

impl IndexWriter {
    /// Creates the index in `dir` (made if missing), or opens the one already there if it has
    /// the same dimension; `map_size` (rounded up to the page size) is the most the
    /// environment may grow to, and can be raised this way on an existing index.
    pub fn create(dir: &Path, map_size: usize, dims: usize) -> Result<Self> {
        if dims == 0 || u32::try_from(dims).is_err() {
            return Err(index_err(format!(
                "cannot create an index of {dims} dimensions at {}",
                dir.display()
            )));
        }
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let page = page_size();
        let map_size = map_size.max(1).div_ceil(page).saturating_mul(page);
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.map_size(map_size).max_dbs(MAX_DBS);
        // SAFETY: the environment is memory-mapped; LMDB's lock file guards it against other
        // processes, and nothing else in this process writes to the file behind its back.
        #[allow(unsafe_code)]
        let env = unsafe { options.open(dir) }.map_err(|e| heed_err(dir, "opening", e))?;

        let wtxn = env.write_txn().map_err(|e| heed_err(dir, "opening", e))?;
        let (arroy, meta, configs, codes) = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| -> heed::Result<_> {
                let arroy: arroy::Database<Dist> = dbo.create_database(wtxn, Some(ARROY_DB))?;
                let meta: heed::Database<Str, Bytes> = dbo.create_database(wtxn, Some(META_DB))?;
                let configs: heed::Database<U16<BigEndian>, Unit> =
                    dbo.create_database(wtxn, Some(CONFIG_DB))?;
                let codes: heed::Database<U16<BigEndian>, Bytes> =
                    dbo.create_database(wtxn, Some(CODES_DB))?;
                match meta.get(wtxn, KEY_DIMS)? {
                    Some(_) => {}
                    None => {
                        let dims = u32::try_from(dims).unwrap_or(u32::MAX);
                        meta.put(wtxn, KEY_DIMS, &dims.to_le_bytes())?;
                        meta.put(
                            wtxn,
                            KEY_DISTANCE,
                            <Dist as arroy::Distance>::name().as_bytes(),
                        )?;
                    }
                }
                Ok(CommitOrAbort::<_, ()>::Commit((
                    arroy, meta, configs, codes,
                )))
            })
            .map_err(|e| heed_err(dir, "creating the databases of", e))?
            .unwrap_commit();

        let store = Store::new(env, dir.to_path_buf(), arroy, meta, configs, Some(codes))?;
        if store.dims != dims {
            return Err(index_err(format!(
                "the index at {} has {} dimensions, not {dims}",
                dir.display(),
                store.dims
            )));
        }
        Ok(IndexWriter {
            store,
            n_trees: DEFAULT_N_TREES,
            tmp_dir: None,
        })
    }

    /// Opens the index in `dir` (made by [`create`](Self::create), or a snapshot copied there
    /// as `data.mdb`), with the map size recorded in it.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.join("data.mdb").is_file() {
            return Err(index_err(format!(
                "there is no vector index at {}",
                dir.display()
            )));
        }
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.max_dbs(MAX_DBS);
        // SAFETY: as in `create`.
        #[allow(unsafe_code)]
        let env = unsafe { options.open(dir) }.map_err(|e| heed_err(dir, "opening", e))?;
        let (arroy, meta, configs, codes) = open_databases(&env, dir)?;
        let codes = match codes {
            Some(codes) => codes,
            // An index written before the quantized codes existed: add their database, filled
            // by the next build.
            None => {
                let wtxn = env.write_txn().map_err(|e| heed_err(dir, "opening", e))?;
                env.create_databases_and_commit(wtxn, |dbo, wtxn| -> heed::Result<_> {
                    let codes: heed::Database<U16<BigEndian>, Bytes> =
                        dbo.create_database(wtxn, Some(CODES_DB))?;
                    Ok(CommitOrAbort::<_, ()>::Commit(codes))
                })
                .map_err(|e| heed_err(dir, "creating the databases of", e))?
                .unwrap_commit()
            }
        };
        let store = Store::new(env, dir.to_path_buf(), arroy, meta, configs, Some(codes))?;
        Ok(IndexWriter {
            store,
            n_trees: DEFAULT_N_TREES,
            tmp_dir: None,
        })
    }

    /// The number of trees [`build`](Self::build) makes for a configuration with more than
    /// `dims` items (at least 1). Existing trees are kept, missing ones added, extra ones
    /// dropped at the next build.
    pub fn with_n_trees(mut self, n_trees: usize) -> Self {
        self.n_trees = n_trees.max(1);
        self
    }

    /// Where arroy writes its temporary files while building (the OS temp dir by default;
    /// `/tmp` on Lambda).
    pub fn with_tmp_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.tmp_dir = Some(dir.into());
        self
    }

    pub fn dims(&self) -> usize {
        self.store.dims
    }

    pub fn n_trees(&self) -> usize {
        self.n_trees
    }

    pub fn path(&self) -> &Path {
        &self.store.location
    }

    /// Adds chunks to a configuration in one transaction; adding an id again replaces its
    /// vector. Nothing is searchable until [`build`](Self::build).
    pub fn add(&self, config: u16, items: &[(i64, &[f32])]) -> Result<()> {
        let store = &self.store;
        let writer = Writer::<Dist>::new(store.arroy, config, store.dims);
        let mut wtxn = store
            .env
            .write_txn()
            .map_err(|e| store.heed_err("writing to", e))?;
        for &(chunk_id, vector) in items {
            let item = u32::try_from(chunk_id).map_err(|_| {
                index_err(format!(
                    "chunk {chunk_id} (configuration {config}) cannot be indexed: arroy item ids \
                     are 0..={}",
                    u32::MAX
                ))
            })?;
            if vector.len() != store.dims {
                return Err(index_err(format!(
                    "chunk {chunk_id} (configuration {config}) has {} dimensions, the index at {} \
                     has {}",
                    vector.len(),
                    store.location.display(),
                    store.dims
                )));
            }
            if !vector.iter().all(|x| x.is_finite()) || vector.iter().all(|&x| x == 0.0) {
                return Err(index_err(format!(
                    "chunk {chunk_id} (configuration {config}) has a zero or non-finite embedding"
                )));
            }
            writer.add_item(&mut wtxn, item, vector).map_err(|e| {
                store.arroy_err(
                    &format!("adding chunk {chunk_id} to configuration {config} of"),
                    e,
                )
            })?;
        }
        if !items.is_empty() {
            store
                .configs
                .put(&mut wtxn, &config, &())
                .map_err(|e| store.heed_err("writing to", e))?;
        }
        wtxn.commit()
            .map_err(|e| store.heed_err("committing to", e))
    }

    /// Removes chunks from a configuration; returns how many were there. Ids that cannot be
    /// arroy items are never there. Takes effect at the next [`build`](Self::build).
    pub fn remove(&self, config: u16, chunk_ids: &[i64]) -> Result<u64> {
        let store = &self.store;
        let writer = Writer::<Dist>::new(store.arroy, config, store.dims);
        let mut wtxn = store
            .env
            .write_txn()
            .map_err(|e| store.heed_err("writing to", e))?;
        let mut removed = 0;
        for &chunk_id in chunk_ids {
            let Ok(item) = u32::try_from(chunk_id) else {
                continue;
            };
            let existed = writer.del_item(&mut wtxn, item).map_err(|e| {
                store.arroy_err(
                    &format!("removing chunk {chunk_id} from configuration {config} of"),
                    e,
                )
            })?;
            removed += u64::from(existed);
        }
        wtxn.commit()
            .map_err(|e| store.heed_err("committing to", e))?;
        Ok(removed)
    }

    /// Builds the trees of every configuration with changes since its last build, in one
    /// transaction, and returns those configurations. The trees, hence search results,
    /// depend only on the items, `seed` and the number of trees; the file's bytes do not
    /// repeat (arroy numbers tree nodes in thread order): equal data may checksum differently.
    pub fn build(&self, seed: u64) -> Result<Vec<u16>> {
        let store = &self.store;
        let mut wtxn = store
            .env
            .write_txn()
            .map_err(|e| store.heed_err("writing to", e))?;
        let configs = store.configs_in(&wtxn)?;
        let mut built = Vec::new();
        for config in configs {
            let mut writer = Writer::<Dist>::new(store.arroy, config, store.dims);
            if let Some(dir) = &self.tmp_dir {
                writer.set_tmpdir(dir);
            }
            let needs_build = writer
                .need_build(&wtxn)
                .map_err(|e| store.arroy_err(&format!("reading configuration {config} of"), e))?;
            if !needs_build {
                // Built by a version without codes: add them.
                if store.codes_missing(&wtxn, config)? {
                    store.write_codes(&mut wtxn, config)?;
                }
                continue;
            }
            // One stream per configuration, so a configuration's trees do not depend on which
            // other configurations changed in the same build.
            let mut rng = ChaCha8Rng::seed_from_u64(
                seed ^ u64::from(config).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            writer
                .builder(&mut rng)
                .n_trees(self.n_trees)
                .build(&mut wtxn)
                .map_err(|e| store.arroy_err(&format!("building configuration {config} of"), e))?;
            store.write_codes(&mut wtxn, config)?;
            built.push(config);
        }
        wtxn.commit()
            .map_err(|e| store.heed_err("committing to", e))?;
        Ok(built)
    }

    /// Items per configuration (including configurations emptied by removals), built or not.
    pub fn counts(&self) -> Result<BTreeMap<u16, u64>> {
        self.store.counts()
    }

    /// Writes a compacted one-file copy of the environment to `path` (through a temporary file
    /// in the same directory, renamed into place, so `path` is never a partial copy).
    /// Refuses while a configuration has changes that are not built.
    pub fn snapshot(&self, path: &Path) -> Result<SnapshotInfo> {
        let store = &self.store;
        {
            let rtxn = store
                .env
                .read_txn()
                .map_err(|e| store.heed_err("reading", e))?;
            for config in store.configs_in(&rtxn)? {
                let writer = Writer::<Dist>::new(store.arroy, config, store.dims);
                let needs_build = writer.need_build(&rtxn).map_err(|e| {
                    store.arroy_err(&format!("reading configuration {config} of"), e)
                })?;
                if needs_build {
                    return Err(index_err(format!(
                        "configuration {config} of the index at {} has changes that are not \
                         built; build before taking a snapshot",
                        store.location.display()
                    )));
                }
            }
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".snapshot-")
            .tempfile_in(parent)
            .map_err(|e| io_err(parent, e))?;
        store
            .env
            .copy_to_file(tmp.as_file_mut(), CompactionOption::Enabled)
            .map_err(|e| heed_err(path, &format!("copying {} to", store.location.display()), e))?;
        tmp.as_file().sync_all().map_err(|e| io_err(path, e))?;
        tmp.persist(path).map_err(|e| io_err(path, e.error))?;
        let size_bytes = fs::metadata(path).map_err(|e| io_err(path, e))?.len();
        let sha256 = sha256_file(path)?;
        Ok(SnapshotInfo {
            path: path.to_path_buf(),
            size_bytes,
            sha256,
        })
    }

    /// Searches the last build of a configuration; see [`IndexReader::search`].
    pub fn search(
        &self,
        config: u16,
        query: &[f32],
        k: usize,
        candidates: Option<&Candidates>,
    ) -> Result<Vec<(i64, f32)>> {
        self.store.search(
            config,
            query,
            k,
            candidates,
            SearchK::default(),
            Rerank::default(),
        )
    }

    pub fn contains(&self, config: u16, chunk_id: i64) -> Result<bool> {
        self.store.contains(config, chunk_id)
    }

    /// Items in the last build of a configuration (0 if never built).
    pub fn len(&self, config: u16) -> Result<u64> {
        self.store.len(config)
    }
}

/// The readers' side: a snapshot file opened read-only. Searches run in their own short read
/// transactions, so one reader serves any number of threads.
pub struct IndexReader {
    store: Store,
    search_k: SearchK,
    rerank: Rerank,
}

impl fmt::Debug for IndexReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexReader")
            .field("location", &self.store.location)
            .field("dims", &self.store.dims)
            .field("search_k", &self.search_k)
            .field("rerank", &self.rerank)
            .finish()
    }
}

impl IndexReader {
    /// Opens a file written by [`IndexWriter::snapshot`] read-only and without a lock file
    /// (`NO_SUB_DIR | READ_ONLY | NO_LOCK`), so the file and its directory may be read-only.
    /// The file must not change while it is open: write each generation to a new path.
    pub fn open_snapshot(file: &Path) -> Result<Self> {
        if !file.is_file() {
            return Err(index_err(format!(
                "there is no snapshot file at {}",
                file.display()
            )));
        }
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.max_dbs(MAX_DBS);
        // SAFETY: NO_LOCK drops LMDB's reader table; that is sound because nothing writes to a
        // snapshot: it is opened READ_ONLY here and every generation goes to a new file.
        #[allow(unsafe_code)]
        unsafe {
            options.flags(EnvFlags::NO_SUB_DIR | EnvFlags::READ_ONLY | EnvFlags::NO_LOCK);
        }
        // SAFETY: the map is read-only and the file is never modified while open (above).
        #[allow(unsafe_code)]
        let env =
            unsafe { options.open(file) }.map_err(|e| heed_err(file, "opening the snapshot", e))?;
        let (arroy, meta, configs, codes) = open_databases(&env, file)?;
        let store = Store::new(env, file.to_path_buf(), arroy, meta, configs, codes)?;
        Ok(IndexReader {
            store,
            search_k: SearchK::default(),
            rerank: Rerank::default(),
        })
    }

    /// Overrides the search effort (default [`SearchK::default`]).
    pub fn with_search_k(mut self, search_k: SearchK) -> Self {
        self.search_k = search_k;
        self
    }

    pub fn search_k(&self) -> SearchK {
        self.search_k
    }

    /// Overrides how many of the quantized stage's nearest are re-ranked exactly, or turns
    /// that stage off (default [`Rerank::default`]).
    pub fn with_rerank(mut self, rerank: Rerank) -> Self {
        self.rerank = rerank;
        self
    }

    pub fn rerank(&self) -> Rerank {
        self.rerank
    }

    pub fn dims(&self) -> usize {
        self.store.dims
    }

    pub fn path(&self) -> &Path {
        &self.store.location
    }

    /// The `k` chunks nearest to `query` in a configuration, as `(chunk_id, cosine
    /// similarity)`, best first (ties by chunk id). With `candidates`, only chunks in the set
    /// are considered; a set under half the configuration is searched exhaustively (exact).
    /// A configuration never built returns nothing; a query of the wrong dimension, or a zero
    /// or non-finite one, is an error.
    pub fn search(
        &self,
        config: u16,
        query: &[f32],
        k: usize,
        candidates: Option<&Candidates>,
    ) -> Result<Vec<(i64, f32)>> {
        self.store
            .search(config, query, k, candidates, self.search_k, self.rerank)
    }

    pub fn contains(&self, config: u16, chunk_id: i64) -> Result<bool> {
        self.store.contains(config, chunk_id)
    }

    /// Items in a configuration (0 if it was never built).
    pub fn len(&self, config: u16) -> Result<u64> {
        self.store.len(config)
    }

    /// Items per configuration.
    pub fn counts(&self) -> Result<BTreeMap<u16, u64>> {
        self.store.counts()
    }
}

/// What the writer and the readers share: the environment, its databases, and how to search.
struct Store {
    env: Env,
    /// The directory (writer) or file (snapshot), for error messages.
    location: PathBuf,
    arroy: ArroyDb,
    configs: ConfigDb,
    /// The quantized codes of each built configuration; `None` in a snapshot written before
    /// they existed (searched with the trees only).
    codes: Option<CodesDb>,
    dims: usize,
}

impl Store {
    fn new(
        env: Env,
        location: PathBuf,
        arroy: ArroyDb,
        meta: MetaDb,
        configs: ConfigDb,
        codes: Option<CodesDb>,
    ) -> Result<Self> {
        let rtxn = env
            .read_txn()
            .map_err(|e| heed_err(&location, "reading", e))?;
        let dims = meta
            .get(&rtxn, KEY_DIMS)
            .map_err(|e| heed_err(&location, "reading", e))?;
        let dims = match dims.and_then(|b| <[u8; 4]>::try_from(b).ok()) {
            Some(b) => u32::from_le_bytes(b) as usize,
            None => {
                return Err(index_err(format!(
                    "{} is not a VoxPersona vector index (no dimension recorded)",
                    location.display()
                )));
            }
        };
        let distance = meta
            .get(&rtxn, KEY_DISTANCE)
            .map_err(|e| heed_err(&location, "reading", e))?;
        let expected = <Dist as arroy::Distance>::name();
        if distance != Some(expected.as_bytes()) {
            return Err(index_err(format!(
                "the index at {} uses distance {:?}, this build expects {expected:?}",
                location.display(),
                distance.map(String::from_utf8_lossy)
            )));
        }
        drop(rtxn);
        Ok(Store {
            env,
            location,
            arroy,
            configs,
            codes,
            dims,
        })
    }

    fn configs_in(&self, rtxn: &heed::RoTxn) -> Result<Vec<u16>> {
        let iter = self
            .configs
            .iter(rtxn)
            .map_err(|e| self.heed_err("reading", e))?;
        iter.map(|r| {
            r.map(|(config, ())| config)
                .map_err(|e| self.heed_err("reading", e))
        })
        .collect()
    }

    fn search(
        &self,
        config: u16,
        query: &[f32],
        k: usize,
        candidates: Option<&Candidates>,
        search_k: SearchK,
        rerank: Rerank,
    ) -> Result<Vec<(i64, f32)>> {
        if query.len() != self.dims {
            return Err(index_err(format!(
                "the query has {} dimensions, the index at {} has {}",
                query.len(),
                self.location.display(),
                self.dims
            )));
        }
        if !query.iter().all(|x| x.is_finite()) || query.iter().all(|&x| x == 0.0) {
            return Err(index_err(
                "the query embedding is zero or not finite".to_owned(),
            ));
        }
        if k == 0 {
            return Ok(Vec::new());
        }
        let rtxn = self
            .env
            .read_txn()
            .map_err(|e| self.heed_err("reading", e))?;
        let Some(reader) = self.reader(&rtxn, config)? else {
            return Ok(Vec::new());
        };
        // A small candidate set is scored exactly by arroy (below half of the items).
        let small_set = candidates.is_some_and(|c| {
            c.0.intersection_len(reader.item_ids()).saturating_mul(2) < reader.n_items()
        });
        if let Some(n) = rerank.resolve(k, reader.n_items())
            && !small_set
            && let Some(codes) = self.codes(&rtxn, config, &reader)?
        {
            let set = candidates.map(|c| &c.0);
            return self.search_codes(&rtxn, config, &reader, &codes, query, k, n, set);
        }
        let mut nns = reader.nns(k);
        nns.search_k(search_k.resolve(k, reader.n_trees()));
        if let Some(candidates) = candidates {
            nns.candidates(&candidates.0);
        }
        let hits = nns
            .by_vector(&rtxn, query)
            .map_err(|e| self.arroy_err(&format!("searching configuration {config} of"), e))?;
        // arroy's cosine distance is (1 - cos) / 2.
        Ok(hits
            .into_iter()
            .map(|(item, distance)| (i64::from(item), 1.0 - 2.0 * distance))
            .collect())
    }

    /// The quantized first stage and its exact re-rank: the Hamming distance from the query's
    /// code to every item's (in `set`, if any), then the cosine similarity of the `n` nearest
    /// by that distance, from their stored vectors; the `k` best, ties by chunk id.
    #[allow(clippy::too_many_arguments)]
    fn search_codes(
        &self,
        rtxn: &heed::RoTxn,
        config: u16,
        reader: &Reader<Dist>,
        codes: &Codes,
        query: &[f32],
        k: usize,
        n: usize,
        set: Option<&RoaringBitmap>,
    ) -> Result<Vec<(i64, f32)>> {
        let shortlist = codes.nearest(query, n, set);
        let norm_q = query.iter().map(|x| x * x).sum::<f32>().sqrt();
        let mut scored = Vec::with_capacity(shortlist.len());
        for item in shortlist {
            let vector = reader
                .item_vector(rtxn, item)
                .map_err(|e| self.arroy_err(&format!("reading configuration {config} of"), e))?
                .ok_or_else(|| {
                    index_err(format!(
                        "configuration {config} of the index at {} has a code for item {item} \
                         but no vector",
                        self.location.display()
                    ))
                })?;
            let norm_v = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            let cos = dot(query, &vector) / (norm_q * norm_v);
            scored.push((i64::from(item), cos));
        }
        let by_score = |a: &(i64, f32), b: &(i64, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if scored.len() > k {
            scored.select_nth_unstable_by(k - 1, by_score);
            scored.truncate(k);
        }
        scored.sort_unstable_by(by_score);
        Ok(scored)
    }

    /// The codes of a configuration's last build, if they were written and match it.
    fn codes<'t>(
        &self,
        rtxn: &'t heed::RoTxn,
        config: u16,
        reader: &Reader<Dist>,
    ) -> Result<Option<Codes<'t>>> {
        let Some(db) = self.codes else {
            return Ok(None);
        };
        let Some(bytes) = db
            .get(rtxn, &config)
            .map_err(|e| self.heed_err("reading", e))?
        else {
            return Ok(None);
        };
        Ok(Codes::parse(bytes, self.dims).filter(|c| c.len() as u64 == reader.n_items()))
    }

    fn codes_missing(&self, rtxn: &heed::RoTxn, config: u16) -> Result<bool> {
        let Some(db) = self.codes else {
            return Ok(false);
        };
        Ok(db
            .get(rtxn, &config)
            .map_err(|e| self.heed_err("reading", e))?
            .is_none())
    }

    /// Writes the codes of every item of a configuration (as built), replacing its old ones.
    fn write_codes(&self, wtxn: &mut heed::RwTxn, config: u16) -> Result<()> {
        let Some(db) = self.codes else {
            return Ok(());
        };
        let what = format!("quantizing configuration {config} of");
        let writer = Writer::<Dist>::new(self.arroy, config, self.dims);
        // Two passes over the stored vectors: their mean, then each one's code around it.
        let mut sum = vec![0f64; self.dims];
        let mut ids = Vec::new();
        for item in writer.iter(wtxn).map_err(|e| self.arroy_err(&what, e))? {
            let (id, vector) = item.map_err(|e| self.arroy_err(&what, e))?;
            let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            for (s, x) in sum.iter_mut().zip(&vector) {
                *s += f64::from(x / norm);
            }
            ids.push(id);
        }
        let count = ids.len().max(1) as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / count) as f32).collect();
        let mut bytes = Codes::header(&mean, &ids);
        let mut code = vec![0u64; words(self.dims)];
        for item in writer.iter(wtxn).map_err(|e| self.arroy_err(&what, e))? {
            let (_, vector) = item.map_err(|e| self.arroy_err(&what, e))?;
            quantize(&vector, &mean, &mut code);
            for word in &code {
                bytes.extend_from_slice(&word.to_le_bytes());
            }
        }
        db.put(wtxn, &config, &bytes)
            .map_err(|e| self.heed_err("writing to", e))
    }

    /// The reader of a configuration's last build; `None` if it was never built.
    fn reader<'t>(&self, rtxn: &'t heed::RoTxn, config: u16) -> Result<Option<Reader<'t, Dist>>> {
        match Reader::open(rtxn, config, self.arroy) {
            Ok(reader) => Ok(Some(reader)),
            Err(arroy::Error::MissingMetadata(_)) => Ok(None),
            Err(arroy::Error::NeedBuild(_)) => Err(index_err(format!(
                "configuration {config} of the index at {} has changes that are not built",
                self.location.display()
            ))),
            Err(e) => Err(self.arroy_err(&format!("opening configuration {config} of"), e)),
        }
    }

    fn contains(&self, config: u16, chunk_id: i64) -> Result<bool> {
        let Ok(item) = u32::try_from(chunk_id) else {
            return Ok(false);
        };
        let rtxn = self
            .env
            .read_txn()
            .map_err(|e| self.heed_err("reading", e))?;
        Ok(self
            .reader(&rtxn, config)?
            .is_some_and(|r| r.item_ids().contains(item)))
    }

    fn len(&self, config: u16) -> Result<u64> {
        let rtxn = self
            .env
            .read_txn()
            .map_err(|e| self.heed_err("reading", e))?;
        Ok(self.reader(&rtxn, config)?.map_or(0, |r| r.n_items()))
    }

    fn counts(&self) -> Result<BTreeMap<u16, u64>> {
        let rtxn = self
            .env
            .read_txn()
            .map_err(|e| self.heed_err("reading", e))?;
        let mut counts = BTreeMap::new();
        for config in self.configs_in(&rtxn)? {
            let what = format!("counting configuration {config} of");
            let writer = Writer::<Dist>::new(self.arroy, config, self.dims);
            let built = !writer
                .need_build(&rtxn)
                .map_err(|e| self.arroy_err(&what, e))?;
            let n = match self.reader(&rtxn, config) {
                Ok(Some(reader)) if built => reader.n_items(),
                // Not built since the last change: count the stored items.
                _ => writer
                    .iter(&rtxn)
                    .map_err(|e| self.arroy_err(&what, e))?
                    .count() as u64,
            };
            counts.insert(config, n);
        }
        Ok(counts)
    }

    fn heed_err(&self, what: &str, e: heed::Error) -> Error {
        heed_err(&self.location, what, e)
    }

    fn arroy_err(&self, what: &str, e: arroy::Error) -> Error {
        match e {
            arroy::Error::Heed(e) => heed_err(&self.location, what, e),
            arroy::Error::Io(source) => io_err(&self.location, source),
            other => index_err(format!(
                "{what} the index at {}: {other}",
                self.location.display()
            )),
        }
    }
}

const CODES_VERSION: u32 = 1;

/// A configuration's binary codes, read in place: `[version, dims, n]` as u32, the mean unit
/// vector (`dims` f32), the item ids (`n` u32), then each item's code (`words(dims)` u64), all
/// little-endian. Bit `i` of a code is set where the unit vector's coordinate `i` is above the
/// mean's, so that the codes of anisotropic embeddings still split every dimension.
struct Codes<'t> {
    mean: Vec<f32>,
    ids: &'t [u8],
    codes: &'t [u8],
    words: usize,
}

impl<'t> Codes<'t> {
    /// Everything before the codes.
    fn header(mean: &[f32], ids: &[u32]) -> Vec<u8> {
        let words = words(mean.len());
        let mut bytes = Vec::with_capacity(12 + 4 * mean.len() + ids.len() * (4 + 8 * words));
        for x in [CODES_VERSION, mean.len() as u32, ids.len() as u32] {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        for x in mean {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        for id in ids {
            bytes.extend_from_slice(&id.to_le_bytes());
        }
        bytes
    }

    /// `None` if the bytes are not codes of this version and dimension.
    fn parse(bytes: &'t [u8], dims: usize) -> Option<Self> {
        let u32_at = |at: usize| {
            let b = bytes.get(at..at + 4)?;
            Some(u32::from_le_bytes(<[u8; 4]>::try_from(b).ok()?) as usize)
        };
        if u32_at(0)? != CODES_VERSION as usize || u32_at(4)? != dims {
            return None;
        }
        let n = u32_at(8)?;
        let words = words(dims);
        let mean_end = 12 + 4 * dims;
        let ids_end = mean_end + 4 * n;
        if bytes.len() != ids_end + 8 * words * n {
            return None;
        }
        let mean = bytes[12..mean_end]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Some(Codes {
            mean,
            ids: &bytes[mean_end..ids_end],
            codes: &bytes[ids_end..],
            words,
        })
    }

    fn len(&self) -> usize {
        self.ids.len() / 4
    }

    fn id(&self, i: usize) -> u32 {
        let b = &self.ids[4 * i..4 * i + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The ids of the `n` items (in `set`, if any) whose codes are nearest to the query's.
    fn nearest(&self, query: &[f32], n: usize, set: Option<&RoaringBitmap>) -> Vec<u32> {
        let len = self.len();
        if n >= len && set.is_none() {
            return (0..len).map(|i| self.id(i)).collect();
        }
        let mut q = vec![0u64; self.words];
        quantize(query, &self.mean, &mut q);
        let mut distances = vec![0u16; len];
        hamming_all(&q, self.codes, &mut distances);
        if let Some(set) = set {
            for (i, d) in distances.iter_mut().enumerate() {
                if !set.contains(self.id(i)) {
                    *d = u16::MAX;
                }
            }
        }
        // The n smallest distances by counting: distances are at most 64 × words.
        let mut histogram = vec![0usize; 64 * self.words + 1];
        for &d in &distances {
            if let Some(h) = histogram.get_mut(usize::from(d)) {
                *h += 1;
            }
        }
        let mut threshold = histogram.len();
        let mut below = 0;
        for (d, &count) in histogram.iter().enumerate() {
            if below + count >= n {
                threshold = d;
                break;
            }
            below += count;
        }
        // Every item under the threshold, and items at it (by position) up to n.
        let mut at_threshold = n.saturating_sub(below);
        let mut nearest = Vec::with_capacity(n.min(len));
        for (i, &d) in distances.iter().enumerate() {
            let d = usize::from(d);
            if d < threshold {
                nearest.push(self.id(i));
            } else if d == threshold && at_threshold > 0 {
                at_threshold -= 1;
                nearest.push(self.id(i));
            }
        }
        nearest
    }
}

/// u64 words in a code of `dims` bits.
fn words(dims: usize) -> usize {
    dims.div_ceil(64)
}

/// The code of `vector`: bit `i` set where its unit vector's coordinate is above `mean[i]`.
fn quantize(vector: &[f32], mean: &[f32], code: &mut [u64]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    code.iter_mut().for_each(|w| *w = 0);
    for (i, (x, m)) in vector.iter().zip(mean).enumerate() {
        if *x > norm * m {
            code[i / 64] |= 1 << (i % 64);
        }
    }
}

/// The Hamming distance from `query` to each code in `codes` (packed, little-endian words).
fn hamming_all(query: &[u64], codes: &[u8], out: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU has the POPCNT instruction (checked just above).
        #[allow(unsafe_code)]
        unsafe {
            hamming_popcnt(query, codes, out);
        }
        return;
    }
    hamming_portable(query, codes, out);
}

/// [`hamming_portable`] compiled with the POPCNT instruction (the x86-64 baseline lacks it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn hamming_popcnt(query: &[u64], codes: &[u8], out: &mut [u16]) {
    hamming_portable(query, codes, out);
}

#[inline(always)]
fn hamming_portable(query: &[u64], codes: &[u8], out: &mut [u16]) {
    let stride = 8 * query.len();
    for (code, d) in codes.chunks_exact(stride).zip(out.iter_mut()) {
        let mut bits = 0u32;
        for (q, w) in query.iter().zip(code.chunks_exact(8)) {
            let w = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            bits += (q ^ w).count_ones();
        }
        *d = bits as u16;
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The index's databases; the codes are missing from a snapshot written before they existed.
fn open_databases(
    env: &Env,
    location: &Path,
) -> Result<(ArroyDb, MetaDb, ConfigDb, Option<CodesDb>)> {
    let rtxn = env
        .read_txn()
        .map_err(|e| heed_err(location, "reading", e))?;
    let opened = env
        .open_databases_and_commit(rtxn, |dbo, rtxn| -> heed::Result<_> {
            let arroy: Option<arroy::Database<Dist>> = dbo.open_database(rtxn, Some(ARROY_DB))?;
            let meta: Option<heed::Database<Str, Bytes>> =
                dbo.open_database(rtxn, Some(META_DB))?;
            let configs: Option<heed::Database<U16<BigEndian>, Unit>> =
                dbo.open_database(rtxn, Some(CONFIG_DB))?;
            let codes: Option<heed::Database<U16<BigEndian>, Bytes>> =
                dbo.open_database(rtxn, Some(CODES_DB))?;
            Ok(CommitOrAbort::<_, ()>::Commit((
                arroy, meta, configs, codes,
            )))
        })
        .map_err(|e| heed_err(location, "opening the databases of", e))?
        .unwrap_commit();
    match opened {
        (Some(arroy), Some(meta), Some(configs), codes) => Ok((arroy, meta, configs, codes)),
        _ => Err(index_err(format!(
            "{} is not a VoxPersona vector index",
            location.display()
        ))),
    }
}

fn index_err(reason: String) -> Error {
    Error::Index { reason }
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn heed_err(path: &Path, what: &str, e: heed::Error) -> Error {
    match e {
        heed::Error::Io(source) => io_err(path, source),
        heed::Error::Mdb(MdbError::MapFull) => index_err(format!(
            "the index at {} is full: reopen it with IndexWriter::create and a larger map size",
            path.display()
        )),
        heed::Error::EnvAlreadyOpened => index_err(format!(
            "{} is already open in this process; share the open index instead",
            path.display()
        )),
        other => index_err(format!("{what} {}: {other}", path.display())),
    }
}

fn page_size() -> usize {
    // LMDB wants the map size in whole OS pages; 64 KiB covers every page size Linux uses
    // (4 KiB on x86-64 and Graviton, 16/64 KiB on some arm64 kernels).
    64 * 1024
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
