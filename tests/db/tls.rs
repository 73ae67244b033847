//! `sslmode` as libpq means it (issue 15, item 7), against the local server. Debian's
//! PostgreSQL serves TLS with a self-signed ("snakeoil") certificate: psql connects with a
//! plain URL, and so must we; verification is on for `verify-ca` and `verify-full` only.

use std::path::PathBuf;

use common::db::DbConfig;
use common::db::tls::Verify;

fn url(query: &str) -> String {
    format!("postgres://postgres@127.0.0.1:5432/postgres{query}")
}

async fn connects(cfg: &DbConfig) -> Result<(), String> {
    let client = cfg.connect().await.map_err(|e| common::error::chain(&e))?;
    client
        .query_one("SELECT 1", &[])
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn plain_urls_connect_to_a_self_signed_server_and_verify_modes_check_it() {
    let admin = DbConfig::from_url(&url("?sslmode=disable")).unwrap();
    let client = admin.connect().await.unwrap();
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    if ssl != "on" {
        eprintln!("the server does not serve TLS (ssl = {ssl}): nothing to check");
        return;
    }
    let cert: String = client
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);

    for query in ["", "?sslmode=prefer", "?sslmode=allow", "?sslmode=require"] {
        let cfg = DbConfig::from_url(&url(query)).unwrap();
        assert_eq!(cfg.verify, Verify::Nothing);
        connects(&cfg)
            .await
            .unwrap_or_else(|e| panic!("{query:?} should connect: {e}"));
    }
    // Encrypted: the server says so.
    let cfg = DbConfig::from_url(&url("?sslmode=require")).unwrap();
    let tls: bool = cfg
        .connect()
        .await
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(tls, "sslmode=require connected without TLS");

    // Verification against the Mozilla roots refuses a self-signed certificate.
    let err = connects(&DbConfig::from_url(&url("?sslmode=verify-full")).unwrap())
        .await
        .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");

    // With the certificate itself as the CA bundle: the chain holds, the name (the
    // machine's, not 127.0.0.1) does not.
    let Ok(readable) = std::fs::metadata(&cert) else {
        eprintln!("{cert} is not readable here: the bundle cases are not checked");
        return;
    };
    assert!(readable.is_file());
    let with_bundle = |query: &str| {
        let mut cfg = DbConfig::from_url(&url(query)).unwrap();
        cfg.ca_bundle = Some(PathBuf::from(&cert));
        cfg
    };
    connects(&with_bundle("?sslmode=verify-ca")).await.unwrap();
    let require = with_bundle("?sslmode=require");
    assert_eq!(
        require.effective_verify(),
        Verify::Chain,
        "as libpq with a root file"
    );
    connects(&require).await.unwrap();
    let err = connects(&with_bundle("?sslmode=verify-full"))
        .await
        .unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
}
