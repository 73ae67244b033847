//! ONNX Runtime for every model of the process (speech recognition, sentence embeddings): the
//! shared library loaded once, one environment for all sessions, CPU sessions opened the same way.
//!
//! `ort` allows a single environment per process (a second `build()` fails even after the first
//! was dropped), so it lives in a process-wide slot and every session builder borrows it: the
//! first caller's library wins, later callers get the same environment whatever path they pass.
//!
//! The library comes from `infra/local/models/prepare.sh` (`onnxruntime/` under the models
//! directory, and `onnxruntime-linux-aarch64/` for Graviton): [`library_in`] finds it there.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

/// Loading ONNX Runtime or opening a graph failed. Callers with their own error type (speech
/// recognition, the embedder) wrap or translate it and add how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error(
        "ONNX Runtime library not found under {dir}: prepare it with \
         infra/local/models/prepare.sh (or `vox models`), or set the library path explicitly"
    )]
    RuntimeLibraryMissing { dir: PathBuf },

    #[error(
        "ONNX Runtime at {path} is version {found}, older than the 1.{required_minor} this build needs"
    )]
    RuntimeTooOld {
        path: PathBuf,
        found: String,
        required_minor: u32,
    },

    #[error("could not load ONNX Runtime from {path}")]
    RuntimeLoad {
        path: PathBuf,
        #[source]
        source: ort::LoadDynamicError,
    },

    #[error("could not create the ONNX Runtime environment")]
    RuntimeInit(#[source] ort::Error),

    #[error("ONNX model {path} is missing")]
    ModelFileMissing { path: PathBuf },

    #[error("could not load the ONNX model {path}")]
    ModelLoad {
        path: PathBuf,
        #[source]
        source: ort::Error,
    },
}

static ENVIRONMENT: Mutex<Option<Environment>> = Mutex::new(None);

/// The process's ONNX Runtime environment, loading the library at `library` on first use.
///
/// Later calls return the same environment whatever path they pass: a process can load only
/// one ONNX Runtime.
pub fn environment(library: &Path) -> Result<Environment, OnnxError> {
    let mut slot = ENVIRONMENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(env) = slot.as_ref() {
        return Ok(env.clone());
    }
    if !library.is_file() {
        return Err(OnnxError::RuntimeLibraryMissing {
            dir: library.parent().unwrap_or(library).to_path_buf(),
        });
    }
    let builder = ort::init_from(library).map_err(|source| match source {
        ort::LoadDynamicError::BadVersion { version_str, path } => OnnxError::RuntimeTooOld {
            path,
            found: version_str,
            required_minor: ort::MINOR_VERSION,
        },
        source => OnnxError::RuntimeLoad {
            path: library.to_path_buf(),
            source,
        },
    })?;
    let env = builder
        .with_name("voxpersona")
        .with_telemetry(false)
        .build()
        .map_err(OnnxError::RuntimeInit)?;
    *slot = Some(env.clone());
    Ok(env)
}

/// The ONNX Runtime library the models script put under `models_dir`: the arm64 build
/// (`onnxruntime-linux-aarch64/`) on aarch64 when present, else `onnxruntime/`.
pub fn library_in(models_dir: &Path) -> Result<PathBuf, OnnxError> {
    // The models script puts the arm64 library (for Graviton Lambdas) beside the x86 one.
    let arm = models_dir.join("onnxruntime-linux-aarch64");
    if cfg!(target_arch = "aarch64") && arm.is_dir() {
        return find_library(&arm);
    }
    find_library(&models_dir.join("onnxruntime"))
}

/// Finds the ONNX Runtime shared library the models script put in `dir`
/// (`libonnxruntime.so`, or the versioned file when the symlinks were lost, e.g. in a zip).
pub fn find_library(dir: &Path) -> Result<PathBuf, OnnxError> {
    let plain = dir.join(library_file_name());
    if plain.is_file() {
        return Ok(plain);
    }
    let missing = || OnnxError::RuntimeLibraryMissing {
        dir: dir.to_path_buf(),
    };
    let prefix = format!("{}.", library_file_name());
    let mut versioned: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|_| missing())?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect();
    // The longest name is the fully versioned file (x.so.1.32.0 rather than x.so.1).
    versioned.sort_by_key(|p| p.as_os_str().len());
    versioned.pop().ok_or_else(missing)
}

fn library_file_name() -> &'static str {
    if cfg!(target_os = "macos") {
        "libonnxruntime.dylib"
    } else {
        "libonnxruntime.so"
    }
}

/// How a CPU session runs. Always one inter-op thread and sequential execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// Intra-op threads (at least 1).
    pub intra_threads: usize,
    /// Whether idle intra-op threads spin before blocking (ONNX Runtime's default). Spinning
    /// buys a little latency on an idle machine and costs a lot on a busy or shared one.
    pub intra_spinning: bool,
}

impl SessionSettings {
    /// `threads` intra-op threads, ONNX Runtime's default spinning.
    pub fn threads(threads: usize) -> Self {
        Self {
            intra_threads: threads,
            intra_spinning: true,
        }
    }
}

/// Opens one ONNX graph on the CPU with full graph optimization.
pub fn open_session(
    env: &Environment,
    path: &Path,
    settings: SessionSettings,
) -> Result<Session, OnnxError> {
    if !path.is_file() {
        return Err(OnnxError::ModelFileMissing {
            path: path.to_path_buf(),
        });
    }
    let load_error = |source: ort::Error| OnnxError::ModelLoad {
        path: path.to_path_buf(),
        source,
    };
    let builder_error = |e: ort::Error<SessionBuilder>| load_error(e.into());
    let mut builder = Session::builder(env)
        .map_err(load_error)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(builder_error)?
        .with_intra_threads(settings.intra_threads.max(1))
        .map_err(builder_error)?
        .with_inter_threads(1)
        .map_err(builder_error)?;
    if !settings.intra_spinning {
        builder = builder
            .with_intra_op_spinning(false)
            .map_err(builder_error)?;
    }
    builder.commit_from_file(path).map_err(load_error)
}
