//! Pipeline tests against real PostgreSQL and the S3/SQS emulator.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod analyze;
mod analyze_llm;
mod flow;
mod index;
mod notifications;
mod transcribe;
