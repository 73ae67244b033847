//! Tests on real audio: festival speech in every ingested format and broken files.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod audio;
