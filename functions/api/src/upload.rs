//! Presigned uploads: a short-lived URL that lets a client PUT one recording straight into
//! the bucket, bound to the object key, the content type and the announced size; and
//! presigned playback: a short-lived GET of one recording for a player.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use chrono::{DateTime, Utc};
use common::storage::S3Store;

/// A request a client sends as given (URL, method and every header) to upload the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedUpload {
    pub url: String,
    pub method: String,
    /// Headers the signature covers; the upload fails without them.
    pub headers: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

/// Presigns a PUT of `key` in `bucket`, valid for `ttl`. `Content-Type` and `Content-Length`
/// are signed, so the upload must be of that type and exactly that size.
pub async fn presign_put(
    s3: &S3Store,
    bucket: &str,
    key: &str,
    content_type: &str,
    content_length: i64,
    ttl: Duration,
) -> Result<PresignedUpload, common::Error> {
    let storage = storage_error(bucket, key);
    let config = PresigningConfig::expires_in(ttl).map_err(|e| storage(Box::new(e)))?;
    let started = Utc::now();
    let request = s3
        .client()
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .content_length(content_length)
        .presigned(config)
        .await
        .map_err(|e| storage(Box::new(e)))?;
    let mut headers: BTreeMap<String, String> = request
        .headers()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    // The client must send these whether or not this SDK version lists them.
    headers.insert("content-type".into(), content_type.to_owned());
    headers.insert("content-length".into(), content_length.to_string());
    Ok(PresignedUpload {
        url: request.uri().to_owned(),
        method: request.method().to_owned(),
        headers,
        expires_at: started + chrono_ttl(ttl),
    })
}

/// Presigns a GET of `key` in `bucket`, valid for `ttl`: what a player (an `<audio>`
/// element, which cannot send an API key) loads the recording from.
pub async fn presign_get(
    s3: &S3Store,
    bucket: &str,
    key: &str,
    ttl: Duration,
) -> Result<(String, DateTime<Utc>), common::Error> {
    let storage = storage_error(bucket, key);
    let config = PresigningConfig::expires_in(ttl).map_err(|e| storage(Box::new(e)))?;
    let started = Utc::now();
    let request = s3
        .client()
        .get_object()
        .bucket(bucket)
        .key(key)
        .presigned(config)
        .await
        .map_err(|e| storage(Box::new(e)))?;
    Ok((request.uri().to_owned(), started + chrono_ttl(ttl)))
}

/// The scheme, host and port that presigned URLs of `bucket` point at (for the console's
/// Content-Security-Policy); `None` when presigning fails (no credentials).
pub async fn bucket_origin(s3: &S3Store, bucket: &str) -> Option<String> {
    let (url, _) = presign_get(s3, bucket, "origin", Duration::from_secs(60))
        .await
        .ok()?;
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?']).next()?;
    Some(format!("{scheme}://{host}"))
}

/// A presigning failure of `key` in `bucket` (never worth retrying: nothing was sent).
fn storage_error<'a>(
    bucket: &'a str,
    key: &'a str,
) -> impl Fn(Box<dyn std::error::Error + Send + Sync>) -> common::Error + 'a {
    move |source| common::Error::Storage {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        retryable: false,
        source,
    }
}

fn chrono_ttl(ttl: Duration) -> chrono::Duration {
    chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(15))
}
