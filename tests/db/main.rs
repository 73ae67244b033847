//! Integration tests of `common::db` against a real PostgreSQL, each in its own database.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod api_keys;
mod api_reads;
mod audits;
mod jobs;
mod migrations;
mod persist;
mod prompts;
mod recordings;
mod reference;
mod support;
mod tls;
mod transcriptions;
