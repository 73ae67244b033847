//! Tests on real audio and models: festival speech in every ingested format, broken files,
//! and speech recognition with the prepared models.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod asr;
mod audio;
mod embed;
mod offline;
