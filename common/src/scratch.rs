//! Temporary files that a crash cannot leave behind for good.
//!
//! Each process keeps its temporary files (recording downloads up to 2 GB, index build
//! directories, index reader snapshots) in a directory of its own under each base it uses,
//! `<base>/vox-scratch-<pid>-<start>/`, and holds an exclusive lock on its `.owner` file for
//! as long as it lives. The kernel drops the lock when the process ends, however it ends
//! (`kill -9`, an abort, an out-of-memory kill), so the first use of a base by any later
//! process removes every scratch directory whose lock it can take: those of processes that
//! are gone, never those of live ones, whatever their age and even when a pid is reused.
//! `vox maintain` sweeps the same way. Files inside are still removed by their owners
//! (RAII) on every ordinary path.

use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tracing::{info, warn};

const PREFIX: &str = "vox-scratch-";
const OWNER: &str = ".owner";

/// A directory without an owner file is one whose process died between creating it and
/// locking; one this old is surely such.
const UNOWNED_MIN_AGE: Duration = Duration::from_secs(3600);

/// This process's scratch directories by base, each with its locked owner file.
fn dirs() -> &'static Mutex<HashMap<PathBuf, (PathBuf, File)>> {
    static DIRS: OnceLock<Mutex<HashMap<PathBuf, (PathBuf, File)>>> = OnceLock::new();
    DIRS.get_or_init(Mutex::default)
}

/// This process's scratch directory under `base`, created (and `base` swept of dead
/// processes' directories) on first use.
pub fn dir_in(base: &Path) -> io::Result<PathBuf> {
    let mut dirs = dirs().lock().unwrap_or_else(|e| e.into_inner());
    if let Some((dir, _)) = dirs.get(base) {
        return Ok(dir.clone());
    }
    match sweep(base) {
        Ok(swept) if !swept.removed.is_empty() => info!(
            base = %base.display(),
            directories = swept.removed.len(),
            bytes = swept.bytes,
            "removed the temporary files of processes that are gone"
        ),
        Ok(_) => {}
        Err(e) => warn!(base = %base.display(), error = %e, "could not sweep temporary files"),
    }
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let dir = base.join(format!("{PREFIX}{}-{started}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let owner = File::create(dir.join(OWNER))?;
    owner.try_lock().map_err(|e| match e {
        TryLockError::Error(e) => e,
        TryLockError::WouldBlock => io::Error::other("a fresh scratch directory is locked"),
    })?;
    dirs.insert(base.to_owned(), (dir.clone(), owner));
    Ok(dir)
}

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// Scratch directories of processes that are gone.
    pub removed: Vec<PathBuf>,
    /// Bytes they held.
    pub bytes: u64,
}

/// Removes the scratch directories under `base` that no live process owns. A base that
/// does not exist holds nothing to sweep.
pub fn sweep(base: &Path) -> io::Result<Swept> {
    let mut swept = Swept::default();
    let entries = match std::fs::read_dir(base) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(swept),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_scratch = name.to_str().is_some_and(|n| n.starts_with(PREFIX));
        if !is_scratch || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = entry.path();
        if !abandoned(&dir) {
            continue;
        }
        let bytes = size_of(&dir);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                swept.bytes += bytes;
                swept.removed.push(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "could not remove a scratch directory")
            }
        }
    }
    Ok(swept)
}

/// Whether no live process owns `dir`: its owner lock can be taken (the lock taken here
/// is dropped with the file, at the end of this call), or it never got an owner file and
/// is old.
fn abandoned(dir: &Path) -> bool {
    match File::open(dir.join(OWNER)) {
        Ok(owner) => match owner.try_lock() {
            Ok(()) => true,
            Err(TryLockError::WouldBlock) => false,
            Err(TryLockError::Error(_)) => false,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m.elapsed().is_ok_and(|age| age > UNOWNED_MIN_AGE)),
        Err(_) => false,
    }
}

fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_owners_directory_is_swept_and_a_live_ones_kept() {
        let base = std::env::temp_dir().join(format!("vox-sweep-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let ours = dir_in(&base).unwrap();
        std::fs::write(ours.join("download"), b"live").unwrap();
        assert_eq!(
            dir_in(base.as_path()).unwrap(),
            ours,
            "one directory per base"
        );

        // A process that is gone: its owner file exists, nobody holds its lock.
        let dead = base.as_path().join(format!("{PREFIX}999999-1"));
        std::fs::create_dir_all(dead.join("env")).unwrap();
        std::fs::write(dead.join(OWNER), b"").unwrap();
        std::fs::write(dead.join("env/data.mdb"), vec![0u8; 4096]).unwrap();
        // A live one: another open file description holding the lock.
        let live = base.as_path().join(format!("{PREFIX}999998-1"));
        std::fs::create_dir_all(&live).unwrap();
        let held = File::create(live.join(OWNER)).unwrap();
        held.try_lock().unwrap();
        // Not ours to judge.
        let other = base.as_path().join("someone-else");
        std::fs::create_dir_all(&other).unwrap();

        let swept = sweep(base.as_path()).unwrap();
        assert_eq!(swept.removed, vec![dead.clone()]);
        assert_eq!(swept.bytes, 4096);
        assert!(!dead.exists());
        assert!(live.exists() && other.exists());
        assert!(ours.join("download").exists(), "this process's files stay");

        drop(held);
        assert_eq!(sweep(base.as_path()).unwrap().removed, vec![live]);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
