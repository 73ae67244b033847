//! S3: the recordings bucket (and later index snapshots), with methods named in the
//! domain's words. Objects are streamed, never held whole in memory.

use std::collections::HashMap;
use std::path::Path;

use aws_config::SdkConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use tokio::io::AsyncWriteExt;

use crate::{Error, Result};

/// What S3 knows about an object without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    /// Without quotes.
    pub etag: String,
    pub version_id: Option<String>,
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`), keys lower-case without the prefix.
    pub metadata: HashMap<String, String>,
}

/// The one version of an object a read must see: the one a notification named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    /// Without quotes.
    pub etag: &'a str,
    /// Empty when the bucket is not versioned.
    pub version_id: &'a str,
}

/// The condition of a conditional write ([`S3Store::put_if`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// The object exists with this ETag (`If-Match`).
    IfMatch(String),
    /// The object does not exist (`If-None-Match: *`).
    IfAbsent,
}

/// What a conditional read ([`S3Store::get_bytes_if_changed`]) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The object still has the ETag given: nothing was transferred.
    NotModified,
    /// There is no such object.
    Missing,
    /// The object read whole, with its ETag (without quotes).
    Found { bytes: Vec<u8>, etag: String },
}

/// The S3 adapter, built once per cold start.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
}

impl S3Store {
    pub fn new(sdk: &SdkConfig, path_style: bool) -> Self {
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(path_style)
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(config),
        }
    }

    /// Size, ETag, version and metadata of an object; [`Error::ObjectNotFound`] if missing.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<ObjectHead> {
        self.head_of(bucket, key, None).await
    }

    /// [`S3Store::head`] of one version: that version id in a versioned bucket, else the
    /// object only while it still has that ETag. A version overwritten since is
    /// [`Error::Superseded`].
    pub async fn head_version(
        &self,
        bucket: &str,
        key: &str,
        version: Version<'_>,
    ) -> Result<ObjectHead> {
        self.head_of(bucket, key, Some(version)).await
    }

    async fn head_of(
        &self,
        bucket: &str,
        key: &str,
        version: Option<Version<'_>>,
    ) -> Result<ObjectHead> {
        let mut request = self.client.head_object().bucket(bucket).key(key);
        match version {
            Some(v) if !v.version_id.is_empty() => request = request.version_id(v.version_id),
            Some(v) => request = request.if_match(format!("\"{}\"", v.etag)),
            None => {}
        }
        let out = request.send().await.map_err(|e| {
            if superseded(e.raw_response().map(|r| r.status().as_u16()), None) {
                return Error::Superseded {
                    bucket: bucket.into(),
                    key: key.into(),
                    etag: version.map(|v| v.etag.to_owned()).unwrap_or_default(),
                };
            }
            let missing = e.as_service_error().is_some_and(|s| s.is_not_found());
            not_found_or(bucket, key, missing, e)
        })?;
        Ok(ObjectHead {
            size: out
                .content_length()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            etag: out.e_tag().unwrap_or_default().trim_matches('"').to_owned(),
            version_id: out.version_id().map(str::to_owned),
            content_type: out.content_type().map(str::to_owned),
            metadata: out
                .metadata()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.to_lowercase(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Streams an object into `dest` (created or truncated), stopping with
    /// [`Error::ObjectTooLarge`] as soon as it passes `max_bytes`, whatever its header said.
    /// Returns the number of bytes written.
    pub async fn download_to(
        &self,
        bucket: &str,
        key: &str,
        dest: &Path,
        max_bytes: u64,
    ) -> Result<u64> {
        self.download_of(bucket, key, None, dest, max_bytes).await
    }

    /// [`S3Store::download_to`] of one version (see [`S3Store::head_version`]): a version
    /// overwritten since is [`Error::Superseded`], never the newer file.
    pub async fn download_version_to(
        &self,
        bucket: &str,
        key: &str,
        version: Version<'_>,
        dest: &Path,
        max_bytes: u64,
    ) -> Result<u64> {
        self.download_of(bucket, key, Some(version), dest, max_bytes)
            .await
    }

    async fn download_of(
        &self,
        bucket: &str,
        key: &str,
        version: Option<Version<'_>>,
        dest: &Path,
        max_bytes: u64,
    ) -> Result<u64> {
        let mut request = self.client.get_object().bucket(bucket).key(key);
        match version {
            Some(v) if !v.version_id.is_empty() => request = request.version_id(v.version_id),
            Some(v) => request = request.if_match(format!("\"{}\"", v.etag)),
            None => {}
        }
        let out = request.send().await.map_err(|e| {
            let code = e.as_service_error().and_then(|s| s.meta().code());
            if superseded(e.raw_response().map(|r| r.status().as_u16()), code) {
                return Error::Superseded {
                    bucket: bucket.into(),
                    key: key.into(),
                    etag: version.map(|v| v.etag.to_owned()).unwrap_or_default(),
                };
            }
            let missing = e.as_service_error().is_some_and(|s| s.is_no_such_key());
            not_found_or(bucket, key, missing, e)
        })?;
        let mut body = out.body;
        let io = |e: std::io::Error| Error::Io {
            path: dest.display().to_string(),
            source: e,
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut written = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(|e| Error::Storage {
            bucket: bucket.into(),
            key: key.into(),
            retryable: true,
            source: Box::new(e),
        })? {
            written += chunk.len() as u64;
            if written > max_bytes {
                return Err(Error::ObjectTooLarge {
                    bucket: bucket.into(),
                    key: key.into(),
                    limit: max_bytes,
                });
            }
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        Ok(written)
    }

    /// Uploads bytes with a content type and user metadata; returns the ETag.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: ByteStream,
        content_type: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<String> {
        let out = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body)
            .content_type(content_type)
            .set_metadata(Some(metadata.clone()))
            .send()
            .await
            .map_err(|e| storage_error(bucket, key, e))?;
        Ok(out.e_tag().unwrap_or_default().trim_matches('"').to_owned())
    }

    /// Uploads a local file, streaming it.
    pub async fn put_file(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        content_type: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<String> {
        let body = ByteStream::from_path(path).await.map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        self.put(bucket, key, body, content_type, metadata).await
    }

    /// Uploads bytes only if the object is as expected ([`Precondition`]), so two writers can
    /// never both replace it. Returns the new ETag, or `None` when the precondition failed
    /// (the object changed, appeared or disappeared); nothing was written then.
    pub async fn put_if(
        &self,
        bucket: &str,
        key: &str,
        body: ByteStream,
        content_type: &str,
        condition: &Precondition,
    ) -> Result<Option<String>> {
        let mut request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body)
            .content_type(content_type);
        request = match condition {
            Precondition::IfMatch(etag) => {
                request.if_match(format!("\"{}\"", etag.trim_matches('"')))
            }
            Precondition::IfAbsent => request.if_none_match("*"),
        };
        match request.send().await {
            Ok(out) => Ok(Some(
                out.e_tag().unwrap_or_default().trim_matches('"').to_owned(),
            )),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let code = e
                    .as_service_error()
                    .and_then(|s| s.code())
                    .map(str::to_owned);
                let refused = status == Some(412)
                    || code.as_deref() == Some("PreconditionFailed")
                    || (matches!(condition, Precondition::IfMatch(_))
                        && (status == Some(404) || code.as_deref() == Some("NoSuchKey")));
                if refused {
                    Ok(None)
                } else {
                    Err(storage_error(bucket, key, e))
                }
            }
        }
    }

    /// A small object read whole, with its ETag (without quotes); `None` if it does not
    /// exist. Fails with [`Error::ObjectTooLarge`] past `max_bytes`.
    pub async fn get_bytes(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<Option<(Vec<u8>, String)>> {
        Ok(
            match self
                .get_bytes_if_changed(bucket, key, max_bytes, None)
                .await?
            {
                Fetched::Found { bytes, etag } => Some((bytes, etag)),
                // Without an ETag to match the object cannot be "not modified".
                Fetched::Missing | Fetched::NotModified => None,
            },
        )
    }

    /// A small object read whole unless it still has the ETag `unless_etag`
    /// (`If-None-Match`), so polling an unchanged object transfers nothing. Fails with
    /// [`Error::ObjectTooLarge`] past `max_bytes`.
    pub async fn get_bytes_if_changed(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
        unless_etag: Option<&str>,
    ) -> Result<Fetched> {
        let mut request = self.client.get_object().bucket(bucket).key(key);
        if let Some(etag) = unless_etag {
            request = request.if_none_match(format!("\"{}\"", etag.trim_matches('"')));
        }
        let out = match request.send().await {
            Ok(out) => out,
            Err(e) => {
                if e.raw_response().is_some_and(|r| r.status().as_u16() == 304) {
                    return Ok(Fetched::NotModified);
                }
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    return Ok(Fetched::Missing);
                }
                return Err(storage_error(bucket, key, e));
            }
        };
        let etag = out.e_tag().unwrap_or_default().trim_matches('"').to_owned();
        let mut body = out.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body.try_next().await.map_err(|e| Error::Storage {
            bucket: bucket.into(),
            key: key.into(),
            retryable: true,
            source: Box::new(e),
        })? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max_bytes {
                return Err(Error::ObjectTooLarge {
                    bucket: bucket.into(),
                    key: key.into(),
                    limit: max_bytes,
                });
            }
        }
        Ok(Fetched::Found { bytes, etag })
    }

    /// Deletes an object (a missing one is no error).
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| storage_error(bucket, key, e))?;
        Ok(())
    }

    /// Every object under `prefix` with its last-modified time (all pages).
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<(String, Option<chrono::DateTime<chrono::Utc>>)>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| storage_error(bucket, prefix, e))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let modified = object
                    .last_modified()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
                out.push((key.to_owned(), modified));
            }
        }
        Ok(out)
    }

    /// The underlying client, for local setup (buckets, notifications).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }
}

fn not_found_or<E, R>(bucket: &str, key: &str, missing: bool, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if missing {
        Error::ObjectNotFound {
            bucket: bucket.into(),
            key: key.into(),
        }
    } else {
        storage_error(bucket, key, e)
    }
}

fn storage_error<E, R>(bucket: &str, key: &str, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retryable = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => {
            matches!(
                s.err().code(),
                Some("SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout")
            )
        }
        _ => false,
    };
    Error::Storage {
        bucket: bucket.into(),
        key: key.into(),
        retryable,
        source: Box::new(e),
    }
}

/// Whether S3 refused a read because the object is no longer the version asked for.
fn superseded(status: Option<u16>, code: Option<&str>) -> bool {
    status == Some(412) || code == Some("PreconditionFailed")
}
