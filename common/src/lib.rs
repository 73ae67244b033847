//! VoxPersona's domain and the adapters every function shares.
//!
//! Handlers in `functions/` decode events and delegate here; nothing in this crate knows
//! about Lambda. Heavy adapters (ONNX Runtime, the vector index, AWS clients) live behind
//! cargo features so that each function links only what it uses.

#[cfg(feature = "analysis")]
pub mod analysis;
#[cfg(feature = "asr")]
pub mod asr;
#[cfg(feature = "audio")]
pub mod audio;
#[cfg(feature = "aws")]
pub mod aws;
pub mod chaos;
pub mod config;
pub mod db;
pub mod domain;
#[cfg(feature = "embed")]
pub mod embed;
pub mod error;
#[cfg(feature = "aws")]
pub mod events;
pub mod export;
#[cfg(feature = "index")]
pub mod index;
#[cfg(feature = "llm")]
pub mod llm;
#[cfg(feature = "index-write")]
pub mod maintain;
pub mod metrics;
#[cfg(feature = "onnx")]
pub mod onnx;
#[cfg(feature = "aws")]
pub mod queue;
pub mod quotes;
pub mod scratch;
#[cfg(feature = "search")]
pub mod search;
pub mod speakers;
#[cfg(feature = "transcribe")]
pub mod speech;
#[cfg(feature = "speech-api")]
pub mod speech_api;
#[cfg(feature = "aws-transcribe")]
pub mod speech_aws;
#[cfg(feature = "aws")]
pub mod storage;
#[cfg(feature = "aws")]
pub mod sweep;
pub mod telemetry;
#[cfg(feature = "transcribe")]
pub mod transcribe;

pub use error::{Error, Result};
