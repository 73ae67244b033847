//! `vox upload`: puts a recording into the recordings bucket with its metadata as
//! `x-amz-meta-*` headers, as a user's S3 client would, so that the bucket's ObjectCreated
//! notification starts the pipeline.
//!
//! The headers are the ones the transcribe stage reads
//! ([`RecordingMetadata::from_object_metadata`]), and they are checked with that same code
//! before anything is sent, so bad metadata fails here, naming the field, instead of
//! failing the recording later.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use common::domain::RecordingMetadata;
use common::storage::S3Store;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Serialize;

/// Header values are ASCII: everything else (and `%` itself) is percent-encoded UTF-8, which
/// the transcribe stage decodes.
const HEADER_VALUE: &AsciiSet = &CONTROLS.add(b'%');

/// The arguments of `vox upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The recording (ogg/opus, webm, mp3, m4a, wav, flac).
    pub file: PathBuf,
    /// `design` or `interview` (or Дизайн / Интервью).
    #[arg(long)]
    pub scenario: String,
    /// Building type of the place: hotel, restaurant or spa (or a word for one).
    #[arg(long)]
    pub building: String,
    /// A report type id to produce (repeatable); none means every type valid for the
    /// scenario and building.
    #[arg(long = "report-type")]
    pub report_types: Vec<String>,
    #[arg(long)]
    pub employee: Option<String>,
    /// The venue's name.
    #[arg(long)]
    pub place: Option<String>,
    #[arg(long)]
    pub city: Option<String>,
    /// The interviewee (interviews).
    #[arg(long)]
    pub client: Option<String>,
    /// Date of the audit or interview, YYYY-MM-DD.
    #[arg(long)]
    pub date: Option<String>,
    /// The auditor's own sequence number of the recording.
    #[arg(long)]
    pub number: Option<String>,
    /// A zone of the place the recording covers (repeatable).
    #[arg(long = "zone")]
    pub zones: Vec<String>,
    /// Language of the speech, ru or en; detected when omitted.
    #[arg(long)]
    pub language: Option<String>,
    /// The recordings bucket.
    #[arg(long, env = "VOX_RECORDINGS_BUCKET")]
    pub bucket: String,
    /// Object key; default: VOX_RECORDINGS_PREFIX (`recordings/`) and the file's name.
    #[arg(long)]
    pub key: Option<String>,
}

/// What was uploaded, printed as JSON on stdout.
#[derive(Debug, Serialize)]
struct Uploaded<'a> {
    bucket: &'a str,
    key: &'a str,
    etag: String,
    bytes: u64,
}

/// Checks the metadata, then uploads the file and prints its bucket, key and ETag.
pub async fn run(args: &UploadArgs) -> anyhow::Result<()> {
    let headers = metadata_headers(args)?;
    let bytes = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    let key = match &args.key {
        Some(key) => key.clone(),
        None => default_key(&args.file)?,
    };
    let sdk = common::aws::load().await;
    let aws = common::aws::AwsSettings::from_env()?;
    let s3 = S3Store::new(&sdk, aws.s3_path_style);
    let etag = s3
        .put_file(
            &args.bucket,
            &key,
            &args.file,
            content_type(&args.file),
            &headers,
        )
        .await
        .with_context(|| {
            format!(
                "uploading {} to s3://{}/{key}",
                args.file.display(),
                args.bucket
            )
        })?;
    let out = Uploaded {
        bucket: &args.bucket,
        key: &key,
        etag,
        bytes,
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

/// The user metadata (header names without `x-amz-meta-`), checked by the transcribe
/// stage's own parser.
pub fn metadata_headers(args: &UploadArgs) -> anyhow::Result<HashMap<String, String>> {
    for (field, items) in [("report-type", &args.report_types), ("zone", &args.zones)] {
        if let Some(item) = items.iter().find(|i| i.contains(',')) {
            bail!(
                "metadata field {field} is not valid: {item:?} contains a comma, which separates list items"
            );
        }
    }
    let mut plain: Vec<(&str, String)> = vec![
        ("scenario", args.scenario.clone()),
        ("building", args.building.clone()),
    ];
    if !args.report_types.is_empty() {
        plain.push(("report-types", args.report_types.join(",")));
    }
    if !args.zones.is_empty() {
        plain.push(("zones", args.zones.join(",")));
    }
    let optional = [
        ("employee", &args.employee),
        ("place", &args.place),
        ("city", &args.city),
        ("client", &args.client),
        ("date", &args.date),
        ("number", &args.number),
        ("language", &args.language),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            plain.push((name, v.clone()));
        }
    }
    let headers: HashMap<String, String> = plain
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_owned(),
                utf8_percent_encode(&v, HEADER_VALUE).to_string(),
            )
        })
        .collect();
    // The very parser the transcribe stage runs on the stored object's metadata.
    let parsed = RecordingMetadata::from_object_metadata(&headers)?;
    if parsed.scenario.is_none() {
        bail!("metadata field scenario is not valid: it is empty");
    }
    if parsed.building.is_none() {
        bail!("metadata field building is not valid: it is empty");
    }
    Ok(headers)
}

/// `recordings/<file name>` (the prefix from VOX_RECORDINGS_PREFIX).
fn default_key(file: &Path) -> anyhow::Result<String> {
    let prefix = common::config::or_default("VOX_RECORDINGS_PREFIX", "recordings/")?;
    let name = file.file_name().and_then(|n| n.to_str()).with_context(|| {
        format!(
            "{} has no file name usable as a key; give --key",
            file.display()
        )
    })?;
    Ok(format!("{prefix}{name}"))
}

/// A real content type by extension: an emulator drops the body of a form-typed PUT.
fn content_type(file: &Path) -> &'static str {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("ogg" | "opus" | "oga") => "audio/ogg",
        Some("webm") => "audio/webm",
        Some("mp3") => "audio/mpeg",
        Some("m4a" | "mp4" | "aac") => "audio/mp4",
        Some("wav") => "audio/wav",
        Some("flac") => "audio/flac",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn args() -> UploadArgs {
        UploadArgs {
            file: "a.ogg".into(),
            scenario: "design".into(),
            building: "отель".into(),
            report_types: vec!["structured-audit".into(), "audit-compliance".into()],
            employee: Some("Иван Петров".into()),
            place: Some("Гранд 100%".into()),
            city: None,
            client: None,
            date: Some("2026-03-14".into()),
            number: Some("12".into()),
            zones: vec!["Лобби".into(), "spa".into()],
            language: Some("ru".into()),
            bucket: "b".into(),
            key: None,
        }
    }

    #[test]
    fn headers_are_ascii_and_read_back_as_given() {
        let headers = metadata_headers(&args()).unwrap();
        assert!(headers.values().all(|v| v.is_ascii()), "{headers:?}");
        let meta = RecordingMetadata::from_object_metadata(&headers).unwrap();
        assert_eq!(meta.building.as_deref(), Some("отель"));
        assert_eq!(meta.place.as_deref(), Some("Гранд 100%"));
        assert_eq!(meta.zones, vec!["Лобби", "spa"]);
        assert_eq!(
            meta.report_types,
            vec!["structured-audit", "audit-compliance"]
        );
        assert_eq!(meta.number, Some(12));
    }

    #[test]
    fn bad_metadata_fails_naming_the_field() {
        let mut a = args();
        a.date = Some("14.03.2026".into());
        let err = metadata_headers(&a).unwrap_err().to_string();
        assert!(err.contains("date"), "{err}");
        let mut a = args();
        a.building = "склад".into();
        let err = metadata_headers(&a).unwrap_err().to_string();
        assert!(err.contains("building"), "{err}");
        let mut a = args();
        a.zones = vec!["a,b".into()];
        let err = metadata_headers(&a).unwrap_err().to_string();
        assert!(err.contains("zone"), "{err}");
    }
}
