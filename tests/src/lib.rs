//! Test support: a fresh PostgreSQL database per test, cloned from a migrated template.
//!
//! The template is named after the migrations' fingerprint, built once (under an advisory
//! lock, so parallel test processes build it once between them) and published by renaming,
//! so a half-built template is never cloned. Each test's database is dropped when its
//! [`TestDb`] is.

pub mod aws;
pub mod der;
pub mod wer;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result};
use common::db::{DbConfig, PgPool, migrate};

/// Admin connection string of the server the tests use.
pub fn admin_url() -> String {
    std::env::var("VOX_TEST_DATABASE_URL").unwrap_or_else(|_| {
        "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".to_owned()
    })
}

fn admin_config() -> Result<DbConfig> {
    DbConfig::from_url(&admin_url())
        .context("VOX_TEST_DATABASE_URL is not a valid connection string")
}

/// Advisory lock key serialising template builds across test processes.
const TEMPLATE_LOCK: i64 = 0x766f_7874_706c;

/// A database of its own for one test.
#[derive(Debug)]
pub struct TestDb {
    pub cfg: DbConfig,
    pub pool: PgPool,
    name: String,
}

impl TestDb {
    /// A migrated database, cloned from the template.
    pub async fn new() -> Result<Self> {
        let admin_cfg = admin_config()?;
        let admin = admin_cfg
            .connect()
            .await
            .context("connecting to the test PostgreSQL server")?;
        let template = ensure_template(&admin_cfg, &admin).await?;
        let name = unique_name("vox_test");
        let sql = format!(
            "CREATE DATABASE {} TEMPLATE {}",
            migrate::quote_ident(&name),
            migrate::quote_ident(&template)
        );
        // Cloning fails while anyone is connected to the template; that is only ever the
        // brief moment another process builds it, so retry for a while.
        let mut attempt = 0;
        loop {
            match admin.batch_execute(&sql).await {
                Ok(()) => break,
                Err(e)
                    if attempt < 50
                        && e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e).context("cloning the template database"),
            }
        }
        let cfg = admin_cfg.with_dbname(&name);
        let pool = PgPool::new(&cfg)?;
        Ok(Self { cfg, pool, name })
    }

    /// An empty database (no migrations), for migration tests.
    pub async fn empty() -> Result<Self> {
        let admin_cfg = admin_config()?;
        let admin = admin_cfg.connect().await?;
        let name = unique_name("vox_empty");
        admin
            .batch_execute(&format!("CREATE DATABASE {}", migrate::quote_ident(&name)))
            .await?;
        let cfg = admin_cfg.with_dbname(&name);
        let pool = PgPool::new(&cfg)?;
        Ok(Self { cfg, pool, name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a runtime: do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(cfg) = admin_config()
                    && let Ok(admin) = cfg.connect().await
                {
                    let sql = format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        migrate::quote_ident(&name)
                    );
                    let _ = admin.batch_execute(&sql).await;
                }
            });
        })
        .join();
    }
}

/// A name no other test (in any process) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn ensure_template(admin_cfg: &DbConfig, admin: &tokio_postgres::Client) -> Result<String> {
    let template = format!("vox_tpl_{:016x}", migrate::fingerprint());
    if database_exists(admin, &template).await? {
        return Ok(template);
    }
    admin
        .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK])
        .await?;
    let built = async {
        if database_exists(admin, &template).await? {
            return anyhow::Ok(());
        }
        let building = format!("{template}_building");
        // Left over by a process that died while building it.
        let quoted = migrate::quote_ident(&building);
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            .await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await?;
        {
            let mut client = admin_cfg.with_dbname(&building).connect().await?;
            migrate::run(&mut client)
                .await
                .context("migrating the template database")?;
        }
        // The client is dropped, but its backend may take a moment to go away.
        let mut attempt = 0;
        loop {
            let sql = format!(
                "ALTER DATABASE {} RENAME TO {}",
                migrate::quote_ident(&building),
                migrate::quote_ident(&template)
            );
            match admin.batch_execute(&sql).await {
                Ok(()) => break,
                Err(e)
                    if attempt < 50
                        && e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
    .await;
    admin
        .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK])
        .await?;
    built?;
    Ok(template)
}

async fn database_exists(admin: &tokio_postgres::Client, name: &str) -> Result<bool> {
    let row = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?;
    Ok(row.is_some())
}

/// Row counts of every table in the public schema.
pub async fn row_counts(client: &tokio_postgres::Client) -> Result<BTreeMap<String, i64>> {
    let tables = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
            &[],
        )
        .await?;
    let mut counts = BTreeMap::new();
    for row in tables {
        let table: String = row.get(0);
        let sql = format!("SELECT count(*) FROM {}", migrate::quote_ident(&table));
        let n: i64 = client.query_one(&sql, &[]).await?.get(0);
        counts.insert(table, n);
    }
    Ok(counts)
}

/// A description of the schema (columns, constraints, indexes) to compare two databases.
pub async fn schema_fingerprint(client: &tokio_postgres::Client) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' '
                    || is_nullable || ' ' || coalesce(column_default, '')
             FROM information_schema.columns WHERE table_schema = 'public'
             UNION ALL
             SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' '
                    || pg_get_constraintdef(oid)
             FROM pg_constraint WHERE connamespace = 'public'::regnamespace
             UNION ALL
             SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
             ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
