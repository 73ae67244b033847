//! The one error type of speech recognition.

use std::path::PathBuf;

use crate::onnx::OnnxError;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while loading the speech models or transcribing.
///
/// Loading errors name the file involved and, when it is simply absent, say how to create it;
/// inference errors name the graph that failed.
#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error(
        "model file {path} is missing: prepare the models with infra/local/models/prepare.sh \
         (or `vox models`) and point the models directory at its output"
    )]
    ModelFileMissing { path: PathBuf },

    #[error(
        "ONNX Runtime library not found under {dir}: prepare the models with \
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

    #[error("could not load the ONNX model {path}")]
    ModelLoad {
        path: PathBuf,
        #[source]
        source: ort::Error,
    },

    #[error("model description {path} is not usable: {reason}")]
    ModelConfig { path: PathBuf, reason: String },

    #[error("could not load the tokenizer {path}")]
    Tokenizer {
        path: PathBuf,
        #[source]
        source: BoxError,
    },

    #[error("{model} inference failed")]
    Inference {
        model: &'static str,
        #[source]
        source: ort::Error,
    },

    #[error("the {model} graph does not match this code at {tensor}: {reason}")]
    GraphMismatch {
        model: &'static str,
        tensor: String,
        reason: String,
    },

    #[error(
        "an audio window of {samples} samples is longer than the {max} samples (30 s) Whisper reads"
    )]
    WindowTooLong { samples: usize, max: usize },

    #[error("reading the audio failed")]
    Audio(#[source] BoxError),

    #[error("could not decode token ids to text")]
    Detokenize(#[source] BoxError),
}

/// ONNX Runtime's loading errors as the speech recognition errors they always were (the
/// messages point at `prepare.sh`, which prepares these models).
impl From<OnnxError> for AsrError {
    fn from(e: OnnxError) -> Self {
        match e {
            OnnxError::RuntimeLibraryMissing { dir } => AsrError::RuntimeLibraryMissing { dir },
            OnnxError::RuntimeTooOld {
                path,
                found,
                required_minor,
            } => AsrError::RuntimeTooOld {
                path,
                found,
                required_minor,
            },
            OnnxError::RuntimeLoad { path, source } => AsrError::RuntimeLoad { path, source },
            OnnxError::RuntimeInit(source) => AsrError::RuntimeInit(source),
            OnnxError::ModelFileMissing { path } => AsrError::ModelFileMissing { path },
            OnnxError::ModelLoad { path, source } => AsrError::ModelLoad { path, source },
        }
    }
}

impl AsrError {
    pub(crate) fn inference(model: &'static str) -> impl FnOnce(ort::Error) -> AsrError {
        move |source| AsrError::Inference { model, source }
    }
}
