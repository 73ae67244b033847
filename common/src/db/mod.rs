//! PostgreSQL: configuration, the connection pool, migrations, and one module per aggregate.
//!
//! Connections use rustls (never OpenSSL). `sslmode` in `DATABASE_URL` decides whether TLS
//! is used (`disable`, `prefer`, `require`); when it is, the server certificate and host name
//! are always verified, against `DATABASE_CA_BUNDLE` (a PEM file, e.g. the RDS bundle) or the
//! Mozilla roots.

pub mod analysis_job;
pub mod api_key;
pub mod audit;
pub mod chunk;
pub mod lease;
pub mod migrate;
pub mod recording;
pub mod reference;
pub mod stuck;
pub mod tls;
pub mod transcription;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{self, ConfigError};
use crate::{Error, Result};

pub use deadpool_postgres::{GenericClient, Object as Connection, Transaction};

/// The database a local setup uses when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str =
    "postgres://postgres@127.0.0.1:5432/voxpersona?sslmode=disable";

/// Connection settings, read once per cold start.
#[derive(Clone)]
pub struct DbConfig {
    /// Parsed connection string; kept parsed so the password is never formatted.
    pub pg: tokio_postgres::Config,
    pub ca_bundle: Option<PathBuf>,
    pub pool_size: usize,
    /// What `sslmode` asks of the server's certificate (see [`tls`]).
    pub verify: tls::Verify,
}

impl std::fmt::Debug for DbConfig {
    // The derived form would print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("hosts", &self.pg.get_hosts())
            .field("dbname", &self.pg.get_dbname())
            .field("user", &self.pg.get_user())
            .field("ca_bundle", &self.ca_bundle)
            .field("pool_size", &self.pool_size)
            .field("verify", &self.verify)
            .finish()
    }
}

impl DbConfig {
    /// `DATABASE_URL` (default: the local server's `voxpersona` database),
    /// `DATABASE_CA_BUNDLE` (optional PEM path) and `DATABASE_POOL_SIZE` (default 4).
    pub fn from_env() -> Result<Self, ConfigError> {
        let url = config::or_default("DATABASE_URL", DEFAULT_DATABASE_URL)?;
        let mut cfg = Self::from_url(&url).map_err(|e| ConfigError::Invalid {
            var: "DATABASE_URL",
            reason: e.to_string(),
        })?;
        cfg.ca_bundle = config::optional("DATABASE_CA_BUNDLE")?.map(PathBuf::from);
        cfg.pool_size = config::parsed_or("DATABASE_POOL_SIZE", 4usize)?;
        if cfg.pool_size == 0 {
            return Err(ConfigError::Invalid {
                var: "DATABASE_POOL_SIZE",
                reason: "must be at least 1".into(),
            });
        }
        Ok(cfg)
    }

    /// Settings for a connection string, with no CA bundle and the default pool size;
    /// `sslmode` means what it means to libpq (see [`tls`]).
    pub fn from_url(url: &str) -> Result<Self, tokio_postgres::Error> {
        let (url, verify) = tls::split_sslmode(url);
        let mut pg = tokio_postgres::Config::from_str(&url)?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(10));
        }
        if pg.get_application_name().is_none() {
            pg.application_name("voxpersona");
        }
        Ok(Self {
            pg,
            ca_bundle: None,
            pool_size: 4,
            verify,
        })
    }

    /// The same server and credentials, another database.
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let mut other = self.clone();
        other.pg.dbname(dbname);
        other
    }

    /// The database name (PostgreSQL's default is the user name).
    pub fn dbname(&self) -> String {
        self.pg
            .get_dbname()
            .or(self.pg.get_user())
            .unwrap_or("postgres")
            .to_owned()
    }

    /// The verification in force: `require` with a CA bundle checks the chain, as libpq's
    /// `require` does when a root certificate file exists.
    pub fn effective_verify(&self) -> tls::Verify {
        match self.verify {
            tls::Verify::Nothing
                if self.ca_bundle.is_some()
                    && self.pg.get_ssl_mode() == tokio_postgres::config::SslMode::Require =>
            {
                tls::Verify::Chain
            }
            v => v,
        }
    }

    fn tls(&self) -> Result<MakeRustlsConnect> {
        let tls_err = |reason: String| Error::Tls { reason };
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_bundle {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| tls_err(format!("cannot read {}: {e}", path.display())))?;
                for cert in certs {
                    let cert =
                        cert.map_err(|e| tls_err(format!("bad PEM in {}: {e}", path.display())))?;
                    roots.add(cert).map_err(|e| {
                        tls_err(format!("bad certificate in {}: {e}", path.display()))
                    })?;
                }
                if roots.is_empty() {
                    return Err(tls_err(format!("{} holds no certificate", path.display())));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let tls = tls::client_config(self.effective_verify(), roots)?;
        Ok(MakeRustlsConnect::new(tls))
    }

    /// One connection outside any pool (migrations, administration). The connection task
    /// runs on the current runtime and ends when the client is dropped.
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        let (client, connection) = self.pg.connect(self.tls()?).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL connection ended with an error");
            }
        });
        Ok(client)
    }
}

/// A pool of connections, built once per cold start and reused across warm invocations.
#[derive(Clone, Debug)]
pub struct PgPool {
    pool: Pool,
}

impl PgPool {
    /// Builds the pool; connections are opened lazily on first use.
    pub fn new(cfg: &DbConfig) -> Result<Self> {
        let manager = Manager::from_config(
            cfg.pg.clone(),
            cfg.tls()?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(cfg.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(15)))
            .build()
            .map_err(|e| Error::PoolSetup {
                reason: e.to_string(),
            })?;
        Ok(Self { pool })
    }

    /// A connection from the pool (opened if none is idle).
    pub async fn get(&self) -> Result<Connection> {
        self.pool.get().await.map_err(Error::Pool)
    }

    /// Runs `op` until it succeeds, each attempt on a connection from the pool, and returns
    /// the last error when every attempt failed. A connection whose attempt failed or hung is
    /// taken out of the pool and closed, so the next attempt opens a fresh one: after the
    /// database dropped a connection, the pool may still hold others from before that are
    /// just as dead.
    ///
    /// `op` gets the connection shared rather than borrowed (a future borrowing it would need
    /// a higher-ranked bound that callers' futures cannot prove `Send` for); it must not keep
    /// it.
    pub async fn retrying<T, F>(&self, retry: Retry, op: impl Fn(Arc<Connection>) -> F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let mut pause = retry.first_pause;
        let mut attempt = 1;
        loop {
            let timed_out = || Error::DbTimeout {
                after: retry.per_attempt,
            };
            let outcome = match tokio::time::timeout(retry.per_attempt, self.get()).await {
                Err(_) => Err(timed_out()),
                Ok(Err(e)) => Err(e),
                Ok(Ok(conn)) => {
                    let conn = Arc::new(conn);
                    let outcome = tokio::time::timeout(retry.per_attempt, op(Arc::clone(&conn)))
                        .await
                        .unwrap_or_else(|_| Err(timed_out()));
                    // A connection that failed or hung is closed rather than recycled, so
                    // the next attempt gets another.
                    if outcome.is_err()
                        && let Ok(conn) = Arc::try_unwrap(conn)
                    {
                        drop(deadpool_postgres::Object::take(conn));
                    }
                    outcome
                }
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(e) if attempt >= retry.attempts => return Err(e),
                Err(e) => {
                    tracing::debug!(attempt, error = %e, "database attempt failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
            }
        }
    }
}

/// How hard [`PgPool::retrying`] tries before giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    /// Longest wait for a connection, and then for the operation on it: a connection the
    /// network dropped silently does not fail, it hangs.
    pub per_attempt: Duration,
    /// Pause after the first failure, doubled after each next one.
    pub first_pause: Duration,
}

impl Retry {
    /// For giving a lease up after a failure: a few quick tries, under 20 s when every
    /// connection hangs. The lease expires anyway, so giving up then costs a delay, not a
    /// recording.
    pub const LEASE_RELEASE: Self = Self {
        attempts: 4,
        per_attempt: Duration::from_secs(2),
        first_pause: Duration::from_millis(100),
    };
}

/// One round trip to the server (a health check).
pub async fn ping(client: &impl GenericClient) -> Result<()> {
    client.query_one("SELECT 1", &[]).await?;
    Ok(())
}

/// This database's identity (`deployment.database_id`, made by the migrations): index
/// manifests record it, so an index built from another database is never taken for this one's.
pub async fn database_id(client: &impl GenericClient) -> Result<String> {
    Ok(client
        .query_one("SELECT database_id::text FROM deployment", &[])
        .await?
        .get(0))
}
