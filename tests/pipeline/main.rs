//! Pipeline tests against real PostgreSQL and the S3/SQS emulator.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod analyze;
mod analyze_llm;
mod backup;
mod flow;
mod index;
mod index_reader;
mod maintain;
mod notifications;
mod run_loop;
mod search;
mod sweep;
mod transcribe;
mod transcripts;
