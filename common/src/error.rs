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

    #[error("injected fault at {step}")]
    Injected { step: &'static str },
}

impl Error {
    /// Whether trying the same work again may succeed (a lost connection, a timeout, a
    /// serialization failure), as opposed to input that will always be rejected.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Pool(_) | Error::Injected { .. } => true,
            Error::Db(e) => e.code().is_none_or(|code| {
                // Class 08 connection exceptions, 40 transaction rollbacks (serialization
                // failures, deadlocks), 53 insufficient resources, 57 operator intervention.
                let class = &code.code()[..2];
                matches!(class, "08" | "40" | "53" | "57")
            }),
            Error::Migration(_) => true,
            _ => false,
        }
    }
}
