//! ONNX Runtime for speech recognition: the process-wide environment and CPU sessions of
//! [`crate::onnx`] (shared with the embedder), with errors in [`AsrError`] terms.

use std::path::{Path, PathBuf};

use ort::environment::Environment;
use ort::session::Session;

use super::error::AsrError;
use crate::onnx::{self, SessionSettings};

/// The process's ONNX Runtime environment, loading the library at `library` on first use.
///
/// Later calls return the same environment whatever path they pass: a process can load only
/// one ONNX Runtime (see [`crate::onnx::environment`]).
pub fn environment(library: &Path) -> Result<Environment, AsrError> {
    Ok(onnx::environment(library)?)
}

/// Finds the ONNX Runtime shared library the models script put in `dir`
/// (`libonnxruntime.so`, or the versioned file when the symlinks were lost, e.g. in a zip).
pub fn find_library(dir: &Path) -> Result<PathBuf, AsrError> {
    Ok(onnx::find_library(dir)?)
}

/// Opens one ONNX graph on the CPU with `threads` intra-op threads.
pub fn open_session(env: &Environment, path: &Path, threads: usize) -> Result<Session, AsrError> {
    Ok(onnx::open_session(
        env,
        path,
        SessionSettings::threads(threads),
    )?)
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
