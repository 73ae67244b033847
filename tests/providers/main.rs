//! The hosted model clients against real HTTP servers on 127.0.0.1 (wiremock) speaking each
//! wire protocol: OpenAI chat completions, Anthropic Messages, Amazon Bedrock's Converse
//! (through the AWS SDK), OpenAI audio transcriptions, Amazon Transcribe's batch jobs (the
//! AWS SDK, JSON 1.1).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod anthropic;
mod bedrock;
mod openai;
mod speech;
mod support;
mod transcribe;
