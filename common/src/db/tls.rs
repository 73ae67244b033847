//! `sslmode` as libpq means it, on rustls.
//!
//! tokio-postgres knows `disable`, `prefer` and `require`, and verifies nothing itself; the
//! rustls connector verified every certificate fully, so a plain `postgres://user@host/db`
//! (absent means `prefer`) failed against a server with a self-signed certificate, Debian's
//! default ("invalid peer certificate: UnknownIssuer"), where psql connects. Here:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `allow`, `prefer` (and absent) | when the server offers it | not checked |
//! | `require` | always | not checked; with `DATABASE_CA_BUNDLE` set, its chain is (as libpq does with a root certificate file) |
//! | `verify-ca` | always | its chain, to `DATABASE_CA_BUNDLE` or the Mozilla roots |
//! | `verify-full` | always | its chain and the host name: the production setting |
//!
//! `allow` (libpq: plain first, TLS if refused) is taken as `prefer`: TLS first.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Nothing (the connection is encrypted, not authenticated).
    Nothing,
    /// The chain to a trusted root, whatever host it names.
    Chain,
    /// The chain and the host name.
    Full,
}

/// What a connection string's `sslmode` asks for: the mode tokio-postgres understands in
/// its place, and the verification. `None` when the string names no `sslmode`.
pub fn parse_sslmode(value: &str) -> Option<(&'static str, Verify)> {
    Some(match value {
        "disable" => ("disable", Verify::Nothing),
        "allow" | "prefer" => ("prefer", Verify::Nothing),
        "require" => ("require", Verify::Nothing),
        "verify-ca" => ("require", Verify::Chain),
        "verify-full" => ("require", Verify::Full),
        _ => return None,
    })
}

/// The connection string with its `sslmode` (URL query or `key=value` form) replaced by one
/// tokio-postgres parses, and the verification it asks for (`prefer`'s when absent). An
/// unknown mode is left for tokio-postgres to refuse.
pub fn split_sslmode(conn: &str) -> (String, Verify) {
    let is_url = conn.starts_with("postgres://") || conn.starts_with("postgresql://");
    let separators: &[char] = if is_url { &['?', '&'] } else { &[' ', '\t'] };
    let Some(start) = find_key(conn, "sslmode=", separators) else {
        return (conn.to_owned(), Verify::Nothing);
    };
    let value_start = start + "sslmode=".len();
    let end = conn[value_start..]
        .find(|c: char| separators.contains(&c) || (is_url && c == '#'))
        .map_or(conn.len(), |i| value_start + i);
    match parse_sslmode(&conn[value_start..end]) {
        Some((mode, verify)) => (
            format!("{}{mode}{}", &conn[..value_start], &conn[end..]),
            verify,
        ),
        None => (conn.to_owned(), Verify::Nothing),
    }
}

/// Where `key` starts as a parameter of its own (after a separator, or at the start).
fn find_key(conn: &str, key: &str, separators: &[char]) -> Option<usize> {
    conn.match_indices(key).map(|(i, _)| i).find(|&i| {
        i == 0
            || conn[..i]
                .chars()
                .next_back()
                .is_some_and(|c| separators.contains(&c))
    })
}

/// A rustls client configuration verifying as `verify` asks, against `roots`.
pub fn client_config(
    verify: Verify,
    roots: rustls::RootCertStore,
) -> crate::Result<rustls::ClientConfig> {
    let tls_err = |e: &dyn std::fmt::Display| crate::Error::Tls {
        reason: e.to_string(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&e))?;
    let config = match verify {
        Verify::Full => builder.with_root_certificates(roots),
        Verify::Chain => {
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| tls_err(&e))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly { inner }))
        }
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified {
                algorithms: provider.signature_verification_algorithms,
            })),
    };
    Ok(config.with_no_client_auth())
}

/// `verify-ca`: the chain must lead to a trusted root; the name it is issued to does not
/// matter (rustls checks the chain before the name, so a name error means the chain held).
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `prefer` and `require`: any certificate, as libpq; the handshake's signatures are still
/// checked against the certificate's key, so the session is encrypted to whoever holds it.
#[derive(Debug)]
struct Unverified {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmodes_are_read_as_libpq_reads_them_in_both_forms() {
        let url = |q: &str| format!("postgres://u@h:5432/db{q}");
        assert_eq!(
            split_sslmode(&url("")),
            (url(""), Verify::Nothing),
            "absent is prefer"
        );
        assert_eq!(
            split_sslmode(&url("?sslmode=verify-full&application_name=x")),
            (url("?sslmode=require&application_name=x"), Verify::Full)
        );
        assert_eq!(
            split_sslmode(&url("?connect_timeout=5&sslmode=verify-ca")),
            (url("?connect_timeout=5&sslmode=require"), Verify::Chain)
        );
        assert_eq!(
            split_sslmode(&url("?sslmode=allow")),
            (url("?sslmode=prefer"), Verify::Nothing)
        );
        assert_eq!(
            split_sslmode("host=h sslmode=verify-full dbname=db"),
            ("host=h sslmode=require dbname=db".to_owned(), Verify::Full)
        );
        // Not a parameter of its own, and an unknown mode: left alone.
        assert_eq!(
            split_sslmode(&url("?application_name=nosslmode=verify-full")).1,
            Verify::Nothing
        );
        assert_eq!(
            split_sslmode(&url("?sslmode=bogus")),
            (url("?sslmode=bogus"), Verify::Nothing)
        );
    }
}
