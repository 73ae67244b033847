//! Loading ONNX Runtime: the shared library once per process, one environment for all sessions.
//!
//! `ort` allows a single environment per process (a second `build()` fails even after the first
//! was dropped), so it lives in a process-wide slot and every session builder borrows it. Other
//! ONNX users in the process (the embedder) should go through [`environment`] too.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

use super::error::AsrError;

static ENVIRONMENT: Mutex<Option<Environment>> = Mutex::new(None);

/// The process's ONNX Runtime environment, loading the library at `library` on first use.
///
/// Later calls return the same environment whatever path they pass: a process can load only
/// one ONNX Runtime.
pub fn environment(library: &Path) -> Result<Environment, AsrError> {
    let mut slot = ENVIRONMENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(env) = slot.as_ref() {
        return Ok(env.clone());
    }
    if !library.is_file() {
        return Err(AsrError::RuntimeLibraryMissing {
            dir: library.parent().unwrap_or(library).to_path_buf(),
        });
    }
    let builder = ort::init_from(library).map_err(|source| match source {
        ort::LoadDynamicError::BadVersion { version_str, path } => AsrError::RuntimeTooOld {
            path,
            found: version_str,
            required_minor: ort::MINOR_VERSION,
        },
        source => AsrError::RuntimeLoad {
            path: library.to_path_buf(),
            source,
        },
    })?;
    let env = builder
        .with_name("voxpersona")
        .with_telemetry(false)
        .build()
        .map_err(AsrError::RuntimeInit)?;
    *slot = Some(env.clone());
    Ok(env)
}

/// Finds the ONNX Runtime shared library the models script put in `dir`
/// (`libonnxruntime.so`, or the versioned file when the symlinks were lost, e.g. in a zip).
pub fn find_library(dir: &Path) -> Result<PathBuf, AsrError> {
    let plain = dir.join(library_file_name());
    if plain.is_file() {
        return Ok(plain);
    }
    let prefix = format!("{}.", library_file_name());
    let mut versioned: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|_| AsrError::RuntimeLibraryMissing {
            dir: dir.to_path_buf(),
        })?
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
    versioned
        .pop()
        .ok_or_else(|| AsrError::RuntimeLibraryMissing {
            dir: dir.to_path_buf(),
        })
}

fn library_file_name() -> &'static str {
    if cfg!(target_os = "macos") {
        "libonnxruntime.dylib"
    } else {
        "libonnxruntime.so"
    }
}

/// Opens one ONNX graph on the CPU with `threads` intra-op threads.
pub fn open_session(env: &Environment, path: &Path, threads: usize) -> Result<Session, AsrError> {
    if !path.is_file() {
        return Err(AsrError::ModelFileMissing {
            path: path.to_path_buf(),
        });
    }
    let load_error = |source: ort::Error| AsrError::ModelLoad {
        path: path.to_path_buf(),
        source,
    };
    let builder_error = |e: ort::Error<ort::session::builder::SessionBuilder>| load_error(e.into());
    Session::builder(env)
        .map_err(load_error)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(builder_error)?
        .with_intra_threads(threads.max(1))
        .map_err(builder_error)?
        .with_inter_threads(1)
        .map_err(builder_error)?
        .commit_from_file(path)
        .map_err(load_error)
}

/// The f32 data of the output `name` of `model`, or an error naming it.
pub fn output_f32<'a>(
    outputs: &'a ort::session::SessionOutputs<'_>,
    model: &'static str,
    name: &str,
) -> Result<&'a [f32], AsrError> {
    let value = outputs.get(name).ok_or_else(|| AsrError::GraphMismatch {
        model,
        tensor: name.into(),
        reason: "the graph has no such output".into(),
    })?;
    let (_, data) = value
        .try_extract_tensor::<f32>()
        .map_err(AsrError::inference(model))?;
    Ok(data)
}
