//! Leases kept alive while their work runs.
//!
//! A claim holds a row (a recording being transcribed, an analysis job running) until its
//! `lease_until`. Leases are short (two minutes by default) so that work a killed worker
//! leaves behind is taken over by the next delivery instead of waiting out a long lease; a
//! live worker keeps its lease with a [`Heartbeat`], which extends it every third of its
//! length for as long as the heartbeat lives.
//!
//! The lease must end before the queue delivers the message again, or the redelivery finds
//! the row busy: a worker lives at most the function timeout (900 s), its lease at most one
//! lease length past its last beat, and the deployed queues redeliver after 5,400 s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{debug, warn};

use super::PgPool;
use crate::config::ConfigError;

/// The default lease: long enough to ride out a slow database round trip between beats.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);

/// Lambda's longest timeout; a lease longer than a whole invocation only delays takeover.
pub const MAX_LEASE: Duration = Duration::from_secs(900);

/// A lease length from `var` (seconds), 2..=900, default [`DEFAULT_LEASE`].
pub fn from_env(var: &'static str) -> Result<Duration, ConfigError> {
    bounded(var, crate::config::parsed_or(var, DEFAULT_LEASE.as_secs())?)
}

fn bounded(var: &'static str, secs: u64) -> Result<Duration, ConfigError> {
    if !(2..=MAX_LEASE.as_secs()).contains(&secs) {
        return Err(ConfigError::Invalid {
            var,
            reason: format!(
                "{secs} s: a lease must be 2-{} s (heartbeats extend it while work runs)",
                MAX_LEASE.as_secs()
            ),
        });
    }
    Ok(Duration::from_secs(secs))
}

/// The row a lease is held on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leased {
    /// A recording being transcribed.
    Recording(i64),
    /// An analysis job running.
    Job(i64),
}

impl Leased {
    fn extend_sql(self) -> &'static str {
        match self {
            Self::Recording(_) => {
                "UPDATE recording SET lease_until = now() + $3 * interval '1 millisecond'
                 WHERE recording_id = $1 AND lease_owner = $2 AND status = 'transcribing'"
            }
            Self::Job(_) => {
                "UPDATE analysis_job SET lease_until = now() + $3 * interval '1 millisecond'
                 WHERE analysis_job_id = $1 AND lease_owner = $2 AND status = 'running'"
            }
        }
    }

    fn id(self) -> i64 {
        match self {
            Self::Recording(id) | Self::Job(id) => id,
        }
    }
}

/// Extends a lease every third of its length until dropped. When a beat finds the lease no
/// longer ours (it expired and another worker took it over), the heartbeat stops and
/// [`Heartbeat::lost`] says so; the work's final statements check ownership themselves, so
/// a lost lease never commits twice. A beat the database fails is logged and retried at the
/// next one: the lease still has two thirds of its length to run.
#[derive(Debug)]
pub struct Heartbeat {
    lost: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Starts beating for `owner`'s lease on `row`; the first beat is a third of `lease`
    /// from now (the claim has just set it).
    pub fn start(pool: PgPool, row: Leased, owner: String, lease: Duration) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&lost);
        let period = lease / 3;
        let lease_ms = lease.as_millis() as f64;
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let beat = async {
                    let conn = pool.get().await?;
                    let stmt = conn.prepare_cached(row.extend_sql()).await?;
                    Ok::<_, crate::Error>(
                        conn.execute(&stmt, &[&row.id(), &owner, &lease_ms]).await?,
                    )
                };
                match tokio::time::timeout(period, beat).await {
                    Ok(Ok(1)) => debug!(?row, "lease extended"),
                    Ok(Ok(_)) => {
                        warn!(?row, "the lease is no longer ours; stopping its heartbeat");
                        flag.store(true, Ordering::SeqCst);
                        return;
                    }
                    Ok(Err(e)) => {
                        warn!(?row, error = %crate::error::chain(&e),
                              "could not extend the lease; trying again at the next beat");
                    }
                    Err(_) => {
                        warn!(
                            ?row,
                            "extending the lease timed out; trying again at the next beat"
                        );
                    }
                }
            }
        });
        Self { lost, task }
    }

    /// Whether a beat found the lease taken over.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// The flag [`Heartbeat::lost`] reads, for code that cannot hold the heartbeat.
    pub fn lost_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.lost)
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_lengths_are_bounded_and_errors_name_the_variable() {
        assert_eq!(
            from_env("VOX_TEST_LEASE_SURELY_UNSET").ok(),
            Some(DEFAULT_LEASE)
        );
        assert_eq!(
            bounded("VOX_LEASE_SECONDS", 30).ok(),
            Some(Duration::from_secs(30))
        );
        let err = bounded("VOX_LEASE_SECONDS", 5400).unwrap_err().to_string();
        assert!(err.contains("VOX_LEASE_SECONDS"), "{err}");
        assert!(bounded("VOX_LEASE_SECONDS", 1).is_err());
        assert!(err.contains("2-900"), "{err}");
    }
}
