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
//! # Trees and `search_k`
//!
//! See [`DEFAULT_N_TREES`] and [`DEFAULT_SEARCH_K_FACTOR`] for the measured trade-off.
//! Configurations of at most `dims` items (512 here) are a single leaf, searched exactly.
//! A candidate set under half of a configuration is also searched exactly (arroy computes the
//! distance to every candidate: ~1.4 µs each, ~7 ms for 5,000).
//!
//! # Size
//!
//! A 512-d vector is a 2,052-byte LMDB value, just over the largest value LMDB keeps inline
//! on a 4 KiB page, so each vector takes a whole overflow page: the environment and its
//! snapshot are ~2.2× the raw vectors (444 MiB for 100,000 vectors and 32 trees; each tree
//! adds ~1.6 MiB). Lambda's default 512 MB of `/tmp` is not enough for a reader of 100,000
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
type Env = heed::Env<WithoutTls>;

const ARROY_DB: &str = "arroy";
const META_DB: &str = "vox-meta";
const CONFIG_DB: &str = "vox-configs";
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
        let (arroy, meta, configs) = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| -> heed::Result<_> {
                let arroy: arroy::Database<Dist> = dbo.create_database(wtxn, Some(ARROY_DB))?;
                let meta: heed::Database<Str, Bytes> = dbo.create_database(wtxn, Some(META_DB))?;
                let configs: heed::Database<U16<BigEndian>, Unit> =
                    dbo.create_database(wtxn, Some(CONFIG_DB))?;
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
                Ok(CommitOrAbort::<_, ()>::Commit((arroy, meta, configs)))
            })
            .map_err(|e| heed_err(dir, "creating the databases of", e))?
            .unwrap_commit();

        let store = Store::new(env, dir.to_path_buf(), arroy, meta, configs)?;
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
        let (arroy, meta, configs) = open_databases(&env, dir)?;
        let store = Store::new(env, dir.to_path_buf(), arroy, meta, configs)?;
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
        self.store
            .search(config, query, k, candidates, SearchK::default())
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
}

impl fmt::Debug for IndexReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexReader")
            .field("location", &self.store.location)
            .field("dims", &self.store.dims)
            .field("search_k", &self.search_k)
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
        let (arroy, meta, configs) = open_databases(&env, file)?;
        let store = Store::new(env, file.to_path_buf(), arroy, meta, configs)?;
        Ok(IndexReader {
            store,
            search_k: SearchK::default(),
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
            .search(config, query, k, candidates, self.search_k)
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
    dims: usize,
}

impl Store {
    fn new(
        env: Env,
        location: PathBuf,
        arroy: ArroyDb,
        meta: MetaDb,
        configs: ConfigDb,
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

fn open_databases(env: &Env, location: &Path) -> Result<(ArroyDb, MetaDb, ConfigDb)> {
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
            Ok(CommitOrAbort::<_, ()>::Commit((arroy, meta, configs)))
        })
        .map_err(|e| heed_err(location, "opening the databases of", e))?
        .unwrap_commit();
    match opened {
        (Some(arroy), Some(meta), Some(configs)) => Ok((arroy, meta, configs)),
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
