//! Pipeline tests against real PostgreSQL and the S3/SQS emulator.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod analyze;
mod analyze_llm;
mod flow;
mod notifications;
mod transcribe;
