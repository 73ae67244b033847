//! The one error type of `common`, classified for queue handlers (retryable or permanent)
//! and for the API (client or server fault).

use crate::config::ConfigError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("could not get a PostgreSQL connection")]
    Pool(#[source] deadpool_postgres::PoolError),

    #[error("PostgreSQL request failed")]
    Db(#[from] tokio_postgres::Error),

    /// A request that hung, as one on a connection the network dropped silently does.
    #[error("PostgreSQL did not answer within {after:?}")]
    DbTimeout { after: std::time::Duration },

    #[error("database migration failed")]
    Migration(#[source] BoxError),

    #[error("TLS setup for PostgreSQL failed: {reason}")]
    Tls { reason: String },

    #[error("could not build the PostgreSQL pool: {reason}")]
    PoolSetup { reason: String },

    #[error("unknown scenario {name:?}")]
    UnknownScenario { name: String },

    #[error("unknown report type {name:?} in scenario {scenario:?}")]
    UnknownReportType { name: String, scenario: String },

    #[error("unknown building {name:?}")]
    UnknownBuilding { name: String },

    #[error("report type {report_type:?} is not valid for building {building:?}")]
    InvalidPair {
        building: String,
        report_type: String,
    },

    #[error("transcription {id} does not exist")]
    UnknownTranscription { id: i64 },

    #[error("{field} is not valid: {reason}")]
    InvalidInput { field: &'static str, reason: String },

    #[error("metrics of {report_type} ({building}) do not match its schema: {details}")]
    InvalidMetrics {
        report_type: String,
        building: String,
        details: String,
    },

    #[error("S3 object s3://{bucket}/{key} does not exist")]
    ObjectNotFound { bucket: String, key: String },

    #[error("S3 object s3://{bucket}/{key} is over the {limit} byte limit")]
    ObjectTooLarge {
        bucket: String,
        key: String,
        limit: u64,
    },

    /// The object was overwritten after the notification being handled: its version is
    /// gone, and the newer upload has a notification (and a recording) of its own.
    #[error(
        "superseded: s3://{bucket}/{key} was overwritten before it was transcribed (ETag {etag} \
         is no longer the object's; the newer upload is a recording of its own)"
    )]
    Superseded {
        bucket: String,
        key: String,
        etag: String,
    },

    #[error("S3 request for s3://{bucket}/{key} failed")]
    Storage {
        bucket: String,
        key: String,
        retryable: bool,
        #[source]
        source: BoxError,
    },

    #[error("SQS request to {queue} failed")]
    Queue {
        queue: String,
        retryable: bool,
        #[source]
        source: BoxError,
    },

    #[error("malformed event: {reason}")]
    BadEvent { reason: String },

    #[error("file {path} could not be read or written")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("the lease on recording {recording_id} was lost to another worker")]
    LeaseLost { recording_id: i64 },

    #[error("the lease on analysis job {job_id} was lost to another worker")]
    JobLeaseLost { job_id: i64 },

    #[error("analysis job {job_id} is being processed by another worker until {until}")]
    JobBusy { job_id: i64, until: String },

    #[error("analysis job {job_id} does not exist")]
    UnknownJob { job_id: i64 },

    #[error("recording {recording_id} is being processed by another worker until {until}")]
    Busy { recording_id: i64, until: String },

    #[error("the recording cannot be transcribed: {reason}")]
    BadAudio { reason: String },

    #[error("the speech engine failed: {reason}")]
    Engine { reason: String },

    /// The report engine or the embedder failed while analysing (a panic, an answer that
    /// misses a part): worth another try.
    #[error("the report engine failed: {reason}")]
    Analysis { reason: String },

    /// A fault of the deployment, not of the input or of the moment (a broken built-in
    /// prompt catalog, a worker built without what a message needs): trying again cannot
    /// help, so the work fails with this reason for an operator to read.
    #[error("the worker is misconfigured: {reason}")]
    Misconfigured { reason: String },

    /// This worker lacks what the message needs, another may have it (e.g. a question
    /// answerer): the message goes back for one that does.
    #[error("this worker cannot take the message: {reason}")]
    NotHere { reason: String },

    #[error(
        "recording {recording_id} paused before the deadline after {windows} windows; it resumes on redelivery"
    )]
    Paused { recording_id: i64, windows: usize },

    #[error("{provider} request failed: {reason}")]
    Provider {
        provider: String,
        reason: String,
        retryable: bool,
    },

    #[error("the sentence encoder failed: {reason}")]
    Embed { reason: String },

    #[error("injected fault at {step}")]
    Injected { step: &'static str },

    /// The vector index refused or failed an operation: a wrong dimension, a chunk id that is
    /// not an arroy item id, a corrupt or foreign snapshot. File system failures of the index
    /// are [`Error::Io`] (retryable).
    #[error("vector index: {reason}")]
    Index { reason: String },

    #[error("question {id} does not exist")]
    UnknownQuestion { id: i64 },

    #[error("question {id} is being answered by another worker until {until}")]
    QuestionBusy { id: i64, until: String },
}

/// An error and its causes on one line: `a: b: c`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl Error {
    /// Whether the database connection itself failed (none to be had, one that hung, one the
    /// server closed or cut): worth trying again at once, in process, on a fresh connection,
    /// rather than waiting for the queue to redeliver (5,400 s deployed).
    pub fn is_transient_db(&self) -> bool {
        match self {
            Error::Pool(_) | Error::DbTimeout { .. } => true,
            Error::Db(e) => {
                e.is_closed()
                    || e.code().is_some_and(|code| {
                        // 08 connection exceptions, 57P01-57P03 the server shutting down or
                        // terminating this backend.
                        let code = code.code();
                        code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
                    })
            }
            _ => false,
        }
    }

    /// Whether trying the same work again may succeed (a lost connection, a timeout, a
    /// serialization failure), as opposed to input that will always be rejected.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Pool(_)
            | Error::DbTimeout { .. }
            | Error::Injected { .. }
            | Error::LeaseLost { .. }
            | Error::JobLeaseLost { .. }
            | Error::JobBusy { .. }
            | Error::QuestionBusy { .. }
            | Error::Busy { .. }
            | Error::Paused { .. }
            | Error::Engine { .. }
            | Error::Analysis { .. }
            | Error::NotHere { .. } => true,
            Error::Db(e) => e.code().is_none_or(|code| {
                // Class 08 connection exceptions, 40 transaction rollbacks (serialization
                // failures, deadlocks), 53 insufficient resources, 57 operator intervention.
                let class = &code.code()[..2];
                matches!(class, "08" | "40" | "53" | "57")
            }),
            Error::Migration(_) | Error::Io { .. } => true,
            Error::Storage { retryable, .. }
            | Error::Queue { retryable, .. }
            | Error::Provider { retryable, .. } => *retryable,
            _ => false,
        }
    }
}
