//! Amazon Transcribe as the speech engine (`VOX_SPEECH_ENGINE=aws-transcribe`): a batch
//! transcription job started on the recording where it lies in S3 (no download), with speaker
//! labels, and its result JSON turned into the stage's [`Segment`]s.
//!
//! The pieces, each usable on its own:
//!
//! - [`AwsTranscribeSettings`]: speakers, where results go, an endpoint override.
//! - [`job_name`]: one job name per recording version (bucket, key, ETag), so a redelivered
//!   notification finds the job it started instead of starting another.
//! - [`AwsTranscribe`]: the SDK client, built once. [`AwsTranscribe::start`] calls
//!   StartTranscriptionJob and, when a job of that name exists (`ConflictException`), returns
//!   that job's state; [`AwsTranscribe::state`] calls GetTranscriptionJob.
//! - [`parse_result`]: Transcribe's result JSON (items, alternatives, speaker labels in
//!   either format) to segments with times, punctuated text and speaker ids.
//!
//! The job's completion reaches the transcribe function as an EventBridge "Transcribe Job
//! State Change" event on its queue ([`crate::events::parse_transcribe_event`]).
//!
//! # Errors
//!
//! The SDK's own retries are off: a failed call is one [`Error::Provider`], retryable for
//! throttling, quotas (`LimitExceededException`), internal failures, any 5xx and dropped
//! connections or timeouts (the queue redelivers), permanent for everything else
//! (`BadRequestException`, e.g. media Transcribe cannot read, quoting Transcribe's message).
//!
//! # Configuration
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `VOX_TRANSCRIBE_MAX_SPEAKERS` | most speakers Transcribe tells apart, 2..=30 | 2 |
//! | `VOX_TRANSCRIBE_OUTPUT_BUCKET` | the bucket results are written to | the recording's bucket |
//! | `VOX_TRANSCRIBE_OUTPUT_PREFIX` | the key prefix of results | `transcribe-output/` |
//! | `VOX_TRANSCRIBE_REGION` | another region than the function's | the SDK's |
//! | `VOX_TRANSCRIBE_ENDPOINT_URL` | another endpoint (tests, emulators) | the SDK's |
//!
//! The language is the recording's (its metadata, else `VOX_DEFAULT_LANGUAGE`): `ru` is
//! `ru-RU`, `en` is `en-US`, and a recording of unknown language (`auto`) is identified
//! among the two.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_transcribe::Client;
use aws_sdk_transcribe::config::Region;
use aws_sdk_transcribe::config::retry::RetryConfig;
use aws_sdk_transcribe::config::timeout::TimeoutConfig;
use aws_sdk_transcribe::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_transcribe::types::{
    LanguageCode, Media, MediaFormat, Settings, TranscriptionJob, TranscriptionJobStatus,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracing::info;

use crate::config::{self, ConfigError};
use crate::db::transcription::Segment;
use crate::{Error, Result};

/// Names the engine in errors, logs and stored transcripts.
pub const PROVIDER: &str = "aws-transcribe";

/// How a setting is looked up: the environment, or a map in tests.
pub type Lookup<'a> = &'a dyn Fn(&'static str) -> Result<Option<String>, ConfigError>;

/// The default key prefix of result files.
pub const DEFAULT_OUTPUT_PREFIX: &str = "transcribe-output/";

/// Transcribe's limits on `MaxSpeakerLabels`.
const SPEAKERS: std::ops::RangeInclusive<i32> = 2..=30;

/// How much of an SDK error chain a reason quotes.
const MAX_CHAIN_CHARS: usize = 500;

/// Error codes worth another try whatever their status.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "LimitExceededException",
    "InternalFailureException",
    "ServiceUnavailableException",
    "RequestTimeout",
];

/// The engine's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsTranscribeSettings {
    /// `MaxSpeakerLabels` (speaker labels are always on).
    pub max_speakers: i32,
    /// Where results are written; `None`: the recording's own bucket.
    pub output_bucket: Option<String>,
    /// Key prefix of results, ending in `/` (or empty).
    pub output_prefix: String,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    /// One try of one call.
    pub timeout: Duration,
}

impl Default for AwsTranscribeSettings {
    fn default() -> Self {
        Self {
            max_speakers: 2,
            output_bucket: None,
            output_prefix: DEFAULT_OUTPUT_PREFIX.to_owned(),
            region: None,
            endpoint_url: None,
            timeout: Duration::from_secs(30),
        }
    }
}

impl AwsTranscribeSettings {
    /// The settings, or `None` when `VOX_SPEECH_ENGINE` is not `aws-transcribe`.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(&config::optional)
    }

    pub fn from_lookup(get: Lookup<'_>) -> Result<Option<Self>, ConfigError> {
        if get("VOX_SPEECH_ENGINE")?.as_deref().map(str::trim) != Some(PROVIDER) {
            return Ok(None);
        }
        let mut settings = Self::default();
        if let Some(raw) = get("VOX_TRANSCRIBE_MAX_SPEAKERS")? {
            let invalid = |reason: String| ConfigError::Invalid {
                var: "VOX_TRANSCRIBE_MAX_SPEAKERS",
                reason,
            };
            let n: i32 = raw
                .trim()
                .parse()
                .map_err(|e| invalid(format!("{raw:?}: {e}")))?;
            if !SPEAKERS.contains(&n) {
                return Err(invalid(format!(
                    "{n} is outside {}..={} (Transcribe's limits)",
                    SPEAKERS.start(),
                    SPEAKERS.end()
                )));
            }
            settings.max_speakers = n;
        }
        if let Some(bucket) = get("VOX_TRANSCRIBE_OUTPUT_BUCKET")? {
            let bucket = bucket.trim();
            let valid = (3..=63).contains(&bucket.len())
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c));
            if !valid {
                return Err(ConfigError::Invalid {
                    var: "VOX_TRANSCRIBE_OUTPUT_BUCKET",
                    reason: format!("{bucket:?} is not an S3 bucket name"),
                });
            }
            settings.output_bucket = Some(bucket.to_owned());
        }
        if let Some(prefix) = get("VOX_TRANSCRIBE_OUTPUT_PREFIX")? {
            let prefix = prefix.trim().trim_start_matches('/');
            // Transcribe's OutputKey pattern, with room left for the job name.
            let valid = prefix.len() <= 700
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.!*'()/".contains(c));
            if !valid {
                return Err(ConfigError::Invalid {
                    var: "VOX_TRANSCRIBE_OUTPUT_PREFIX",
                    reason: format!(
                        "{prefix:?} may hold only letters, digits and -_.!*'()/ (at most 700)"
                    ),
                });
            }
            settings.output_prefix = if prefix.is_empty() || prefix.ends_with('/') {
                prefix.to_owned()
            } else {
                format!("{prefix}/")
            };
        }
        settings.region = get("VOX_TRANSCRIBE_REGION")?.map(|r| r.trim().to_owned());
        if let Some(url) = get("VOX_TRANSCRIBE_ENDPOINT_URL")? {
            let url = url.trim();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    var: "VOX_TRANSCRIBE_ENDPOINT_URL",
                    reason: format!("{url:?} is not an http(s) URL"),
                });
            }
            settings.endpoint_url = Some(url.trim_end_matches('/').to_owned());
        }
        Ok(Some(settings))
    }

    /// Where the result of `job_name` on a recording in `recording_bucket` is written.
    pub fn output_location(&self, recording_bucket: &str, job_name: &str) -> S3Location {
        S3Location {
            bucket: self
                .output_bucket
                .clone()
                .unwrap_or_else(|| recording_bucket.to_owned()),
            key: format!("{}{job_name}.json", self.output_prefix),
        }
    }
}

/// The job name of one recording version: `vox-` and 32 hex digits of a SHA-256 of bucket,
/// key and ETag (72 bits fewer than the hash, still no collision in practice). The same
/// version always gets the same name, another version (a re-upload) another; the name fits
/// Transcribe's `^[0-9a-zA-Z._-]+$` and 200 characters.
pub fn job_name(bucket: &str, key: &str, etag: &str) -> String {
    let mut hash = Sha256::new();
    // Lengths first, so that no two triples run together into the same bytes.
    for part in [bucket, key, etag.trim_matches('"')] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("vox-{hex}")
}

/// An S3 object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub key: String,
}

/// The recording a job is started on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaObject {
    pub bucket: String,
    pub key: String,
    /// Without quotes.
    pub etag: String,
    /// The object's content type, when S3 knows it.
    pub content_type: Option<String>,
    /// `ru`, `en`, or `None` (identified among the two).
    pub language: Option<String>,
}

/// Where a job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Queued or transcribing.
    InProgress { job_name: String },
    Completed {
        job_name: String,
        /// As Transcribe gives it (an `https://s3...` URL of the result file).
        transcript_uri: String,
        /// The result file, read from the URI; `None` when it is not an S3 URL.
        output: Option<S3Location>,
    },
    /// Transcribe's reason (e.g. an unsupported media format).
    Failed { job_name: String, reason: String },
}

/// Transcribe's media format for a recording, from its key's extension or else its content
/// type; `None` lets Transcribe tell.
pub fn media_format(key: &str, content_type: Option<&str>) -> Option<MediaFormat> {
    let extension = key
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .filter(|ext| !ext.contains('/'));
    let by_extension = match extension.as_deref() {
        Some("mp3") => Some(MediaFormat::Mp3),
        Some("mp4") => Some(MediaFormat::Mp4),
        Some("m4a") => Some(MediaFormat::M4A),
        Some("wav") => Some(MediaFormat::Wav),
        Some("flac") => Some(MediaFormat::Flac),
        Some("ogg" | "oga" | "opus") => Some(MediaFormat::Ogg),
        Some("webm") => Some(MediaFormat::Webm),
        Some("amr") => Some(MediaFormat::Amr),
        _ => None,
    };
    by_extension.or_else(|| {
        let essence = content_type?.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "audio/mpeg" | "audio/mp3" => Some(MediaFormat::Mp3),
            "audio/mp4" | "audio/x-m4a" | "audio/m4a" => Some(MediaFormat::M4A),
            "video/mp4" => Some(MediaFormat::Mp4),
            "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => Some(MediaFormat::Wav),
            "audio/flac" | "audio/x-flac" => Some(MediaFormat::Flac),
            "audio/ogg" | "audio/opus" => Some(MediaFormat::Ogg),
            "audio/webm" | "video/webm" => Some(MediaFormat::Webm),
            "audio/amr" => Some(MediaFormat::Amr),
            _ => None,
        }
    })
}

/// Amazon Transcribe's batch API.
#[derive(Debug, Clone)]
pub struct AwsTranscribe {
    client: Client,
    settings: AwsTranscribeSettings,
}

impl AwsTranscribe {
    /// The client on `sdk`'s region, credentials and endpoint (`settings` may name another
    /// region or endpoint), with the SDK's retries off. Built once per cold start.
    pub fn new(settings: AwsTranscribeSettings, sdk: &SdkConfig) -> Result<Self> {
        let mut config = aws_sdk_transcribe::config::Builder::from(sdk)
            // A failed call is the queue's to retry: SDK retries would multiply the waits.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
                    .operation_attempt_timeout(settings.timeout)
                    .build(),
            );
        if let Some(region) = &settings.region {
            config = config.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.endpoint_url {
            config = config.endpoint_url(endpoint.clone());
        }
        let config = config.build();
        if config.region().is_none() {
            return Err(provider_error(
                "no AWS region: set AWS_REGION or VOX_TRANSCRIBE_REGION".into(),
                false,
            ));
        }
        Ok(Self {
            client: Client::from_conf(config),
            settings,
        })
    }

    pub fn settings(&self) -> &AwsTranscribeSettings {
        &self.settings
    }

    /// Starts the job of `media` (named by [`job_name`]) on `s3://bucket/key`, with speaker
    /// labels and the result written to [`AwsTranscribeSettings::output_location`]. When the
    /// job exists already (a redelivery), its state instead.
    pub async fn start(&self, media: &MediaObject) -> Result<JobState> {
        let name = job_name(&media.bucket, &media.key, &media.etag);
        let output = self.settings.output_location(&media.bucket, &name);
        let speakers = Settings::builder()
            .show_speaker_labels(true)
            .max_speaker_labels(self.settings.max_speakers)
            .build();
        let mut call = self
            .client
            .start_transcription_job()
            .transcription_job_name(&name)
            .media(
                Media::builder()
                    .media_file_uri(format!("s3://{}/{}", media.bucket, media.key))
                    .build(),
            )
            .set_media_format(media_format(&media.key, media.content_type.as_deref()))
            .settings(speakers)
            .output_bucket_name(&output.bucket)
            .output_key(&output.key);
        call = match media.language.as_deref() {
            Some("ru") => call.language_code(LanguageCode::RuRu),
            Some("en") => call.language_code(LanguageCode::EnUs),
            None => call
                .identify_language(true)
                .language_options(LanguageCode::RuRu)
                .language_options(LanguageCode::EnUs),
            Some(other) => {
                return Err(Error::InvalidInput {
                    field: "language",
                    reason: format!("{other:?} is not ru or en"),
                });
            }
        };
        match call.send().await {
            Ok(started) => {
                info!(
                    job = %name,
                    media = %format!("s3://{}/{}", media.bucket, media.key),
                    "Amazon Transcribe job started"
                );
                match started.transcription_job() {
                    Some(job) => job_state(job, &name),
                    None => Ok(JobState::InProgress { job_name: name }),
                }
            }
            Err(SdkError::ServiceError(service))
                if service.err().code() == Some("ConflictException") =>
            {
                info!(job = %name, "the Amazon Transcribe job exists: reading its state");
                self.state(&name).await
            }
            Err(e) => Err(failure("StartTranscriptionJob", &e)),
        }
    }

    /// The state of the job `job_name` (GetTranscriptionJob).
    pub async fn state(&self, job_name: &str) -> Result<JobState> {
        let output = self
            .client
            .get_transcription_job()
            .transcription_job_name(job_name)
            .send()
            .await
            .map_err(|e| failure("GetTranscriptionJob", &e))?;
        let job = output.transcription_job().ok_or_else(|| {
            provider_error(
                format!("GetTranscriptionJob of {job_name} answered without a job"),
                true,
            )
        })?;
        job_state(job, job_name)
    }
}

fn provider_error(reason: String, retryable: bool) -> Error {
    Error::Provider {
        provider: PROVIDER.to_owned(),
        reason,
        retryable,
    }
}

fn job_state(job: &TranscriptionJob, job_name: &str) -> Result<JobState> {
    let job_name = job.transcription_job_name().unwrap_or(job_name).to_owned();
    Ok(match job.transcription_job_status() {
        Some(TranscriptionJobStatus::Completed) => {
            let Some(uri) = job.transcript().and_then(|t| t.transcript_file_uri()) else {
                return Err(provider_error(
                    format!("job {job_name} is completed but names no transcript file"),
                    false,
                ));
            };
            JobState::Completed {
                output: s3_location(uri),
                transcript_uri: uri.to_owned(),
                job_name,
            }
        }
        Some(TranscriptionJobStatus::Failed) => JobState::Failed {
            reason: job
                .failure_reason()
                .unwrap_or("Amazon Transcribe gave no reason")
                .to_owned(),
            job_name,
        },
        // Queued, in progress, or a status added later: not finished.
        _ => JobState::InProgress { job_name },
    })
}

/// The bucket and key of a result file's URI: `s3://bucket/key`, path style
/// `https://s3.region.amazonaws.com/bucket/key`, or virtual-hosted
/// `https://bucket.s3.region.amazonaws.com/key` (the key percent-decoded).
pub fn s3_location(uri: &str) -> Option<S3Location> {
    let split = |rest: &str| {
        let (bucket, key) = rest.split_once('/')?;
        let key = percent_encoding::percent_decode_str(key)
            .decode_utf8()
            .ok()?
            .into_owned();
        (!bucket.is_empty() && !key.is_empty()).then(|| S3Location {
            bucket: bucket.to_owned(),
            key,
        })
    };
    if let Some(rest) = uri.strip_prefix("s3://") {
        return split(rest);
    }
    let rest = uri.strip_prefix("https://")?;
    let rest = rest.split(['?', '#']).next()?;
    let (host, path) = rest.split_once('/')?;
    if host.starts_with("s3.") || host.starts_with("s3-") {
        split(path)
    } else if let Some((bucket, _)) = host.split_once(".s3.") {
        split(&format!("{bucket}/{path}"))
    } else {
        None
    }
}

/// What one failed call means: retryable or permanent, with Transcribe's code and message.
fn failure<E>(operation: &str, error: &SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let chain = || truncate(&crate::error::chain(error), MAX_CHAIN_CHARS);
    match error {
        SdkError::TimeoutError(_) => provider_error(format!("{operation} timed out"), true),
        SdkError::DispatchFailure(dispatch) if dispatch.is_user() => {
            provider_error(format!("{operation} could not be sent: {}", chain()), false)
        }
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => provider_error(
            format!("the connection to Amazon Transcribe failed: {}", chain()),
            true,
        ),
        SdkError::ConstructionFailure(_) => provider_error(
            format!("{operation} could not be built: {}", chain()),
            false,
        ),
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let err = service.err();
            let code = err.code().unwrap_or("an unnamed error");
            let message = err
                .message()
                .map(|m| truncate(m, MAX_CHAIN_CHARS))
                .unwrap_or_else(chain);
            let transient = err.code().is_some_and(|c| TRANSIENT_CODES.contains(&c))
                || matches!(status, 408 | 429 | 500..=599);
            provider_error(
                format!("{operation}: HTTP {status} {code}: {message}"),
                transient,
            )
        }
        _ => provider_error(format!("{operation}: {}", chain()), true),
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

/// A Transcribe result as the stage stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// `results.transcripts[0].transcript`.
    pub text: String,
    /// `ru` or `en` when the result names `ru-RU` or `en-US`, else the code as given.
    pub language: Option<String>,
    /// In order; `speaker_id` 0, 1, ... in the order speakers first speak (Transcribe's
    /// `spk_0` is 0 when it speaks first, as it does: Transcribe numbers them so).
    pub segments: Vec<Segment>,
    /// Speakers with at least one segment.
    pub speakers: usize,
    /// The end of the last word.
    pub audio_ms: i64,
}

/// A pause between two words longer than this starts a new segment.
const PAUSE_MS: i64 = 1_000;
/// A segment longer than this ends at the next word (Whisper's windows are 30 s).
const MAX_SEGMENT_MS: i64 = 30_000;

#[derive(Deserialize)]
struct ResultFile {
    #[serde(default)]
    results: Results,
    #[serde(default)]
    language_code: Option<String>,
}

#[derive(Deserialize, Default)]
struct Results {
    #[serde(default)]
    transcripts: Vec<TranscriptText>,
    #[serde(default)]
    items: Vec<Item>,
    #[serde(default)]
    speaker_labels: Option<SpeakerLabels>,
    #[serde(default)]
    audio_segments: Vec<AudioSegment>,
    #[serde(default)]
    language_code: Option<String>,
}

#[derive(Deserialize)]
struct TranscriptText {
    transcript: String,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    id: Option<u64>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    start_time: Option<String>,
    #[serde(default)]
    end_time: Option<String>,
    #[serde(default)]
    alternatives: Vec<Alternative>,
    #[serde(default)]
    speaker_label: Option<String>,
}

#[derive(Deserialize)]
struct Alternative {
    content: String,
}

#[derive(Deserialize)]
struct SpeakerLabels {
    #[serde(default)]
    segments: Vec<SpeakerSegment>,
}

#[derive(Deserialize)]
struct SpeakerSegment {
    #[serde(default)]
    start_time: Option<String>,
    #[serde(default)]
    end_time: Option<String>,
    speaker_label: String,
    #[serde(default)]
    items: Vec<SpeakerItem>,
}

#[derive(Deserialize)]
struct SpeakerItem {
    start_time: String,
    speaker_label: String,
}

#[derive(Deserialize)]
struct AudioSegment {
    #[serde(default)]
    items: Vec<u64>,
}

/// Seconds as Transcribe writes them (`"12.34"`) to milliseconds.
fn millis(field: &str, raw: Option<&str>) -> Result<i64> {
    let bad = |reason: String| Error::Provider {
        provider: PROVIDER.to_owned(),
        reason: format!("the result file is not Transcribe's format: {reason}"),
        retryable: false,
    };
    let raw = raw.ok_or_else(|| bad(format!("a word has no {field}")))?;
    let seconds: f64 = raw
        .trim()
        .parse()
        .map_err(|_| bad(format!("{field} {raw:?} is not a number of seconds")))?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(bad(format!("{field} {raw:?} is not a time")));
    }
    Ok((seconds * 1000.0).round() as i64)
}

/// Turns a Transcribe result file into segments: words joined by spaces, punctuation on the
/// word before it, a new segment at every change of speaker, after a sentence's end, after
/// a pause over a second, where Transcribe's own `audio_segments` begin, and after 30 s.
/// Speaker labels are read from the items (the newer format) or from
/// `speaker_labels.segments` (the older one), by a word's start time or else by the segment
/// that holds it.
pub fn parse_result(json: &[u8]) -> Result<Transcript> {
    let file: ResultFile = serde_json::from_slice(json).map_err(|e| Error::Provider {
        provider: PROVIDER.to_owned(),
        reason: format!("the result file is not Transcribe's format: {e}"),
        retryable: false,
    })?;
    let results = file.results;
    // The older format: speakers by word start time, and by segment span.
    let mut speaker_at: HashMap<i64, &str> = HashMap::new();
    let mut spans: Vec<(i64, i64, &str)> = Vec::new();
    if let Some(labels) = &results.speaker_labels {
        for segment in &labels.segments {
            for item in &segment.items {
                speaker_at.insert(
                    millis("start_time", Some(&item.start_time))?,
                    &item.speaker_label,
                );
            }
            if let (Some(start), Some(end)) = (&segment.start_time, &segment.end_time) {
                spans.push((
                    millis("start_time", Some(start))?,
                    millis("end_time", Some(end))?,
                    &segment.speaker_label,
                ));
            }
        }
    }
    let segment_starts: std::collections::HashSet<u64> = results
        .audio_segments
        .iter()
        .filter_map(|s| s.items.first().copied())
        .collect();

    let mut speaker_ids: HashMap<String, i16> = HashMap::new();
    let mut segments: Vec<Segment> = Vec::new();
    let mut current: Option<Segment> = None;
    // Whether the last item closed a sentence.
    let mut sentence_end = false;
    for item in &results.items {
        let Some(content) = item.alternatives.first().map(|a| a.content.trim()) else {
            continue;
        };
        if content.is_empty() {
            continue;
        }
        if item.kind == "punctuation" {
            if let Some(segment) = current.as_mut() {
                segment.text.push_str(content);
            } else if let Some(segment) = segments.last_mut() {
                segment.text.push_str(content);
            }
            sentence_end = content.ends_with(['.', '?', '!', '…']);
            continue;
        }
        let start = millis("start_time", item.start_time.as_deref())?;
        let end = millis("end_time", item.end_time.as_deref())?.max(start);
        let label = item
            .speaker_label
            .as_deref()
            .or_else(|| speaker_at.get(&start).copied())
            .or_else(|| {
                let middle = (start + end) / 2;
                spans
                    .iter()
                    .find(|(s, e, _)| (*s..=*e).contains(&middle))
                    .map(|(_, _, label)| *label)
            });
        let speaker_id = label.map(|label| {
            let next = i16::try_from(speaker_ids.len()).unwrap_or(i16::MAX);
            *speaker_ids.entry(label.to_owned()).or_insert(next)
        });
        let split = current.as_ref().is_some_and(|segment| {
            segment.speaker_id != speaker_id
                || sentence_end
                || start - segment.end_ms > PAUSE_MS
                || segment.end_ms - segment.start_ms > MAX_SEGMENT_MS
                || item.id.is_some_and(|id| segment_starts.contains(&id))
        });
        sentence_end = false;
        if split && let Some(done) = current.take() {
            segments.push(done);
        }
        match current.as_mut() {
            Some(segment) => {
                segment.text.push(' ');
                segment.text.push_str(content);
                segment.end_ms = end;
            }
            None => {
                current = Some(Segment {
                    start_ms: start,
                    end_ms: end,
                    text: content.to_owned(),
                    speaker_id,
                    ..Segment::default()
                });
            }
        }
    }
    segments.extend(current);
    let language = file
        .language_code
        .or(results.language_code)
        .map(|code| match code.as_str() {
            "ru-RU" => "ru".to_owned(),
            "en-US" => "en".to_owned(),
            _ => code,
        });
    Ok(Transcript {
        text: results
            .transcripts
            .first()
            .map(|t| t.transcript.clone())
            .unwrap_or_else(|| {
                segments
                    .iter()
                    .map(|s| s.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
        language,
        audio_ms: segments.last().map_or(0, |s| s.end_ms),
        speakers: speaker_ids.len(),
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(
        vars: &[(&'static str, &str)],
    ) -> impl Fn(&'static str) -> Result<Option<String>, ConfigError> {
        let vars: HashMap<&'static str, String> =
            vars.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        move |var| Ok(vars.get(var).cloned())
    }

    fn settings(
        vars: &[(&'static str, &str)],
    ) -> Result<Option<AwsTranscribeSettings>, ConfigError> {
        let mut all = vec![("VOX_SPEECH_ENGINE", "aws-transcribe")];
        all.extend_from_slice(vars);
        AwsTranscribeSettings::from_lookup(&lookup(&all))
    }

    #[test]
    fn job_names_are_stable_valid_and_differ_by_version() {
        let a = job_name(
            "vox-audio",
            "аудит 1/запись ё.ogg",
            "de73644a7f88c4c2732938c6637de795",
        );
        assert_eq!(
            a,
            job_name(
                "vox-audio",
                "аудит 1/запись ё.ogg",
                "\"de73644a7f88c4c2732938c6637de795\""
            )
        );
        assert!(a.starts_with("vox-") && a.len() <= 200, "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "{a}"
        );
        assert_ne!(a, job_name("vox-audio", "аудит 1/запись ё.ogg", "0f0f"));
        assert_ne!(
            a,
            job_name(
                "vox-audio",
                "аудит 1/запись ё2.ogg",
                "de73644a7f88c4c2732938c6637de795"
            )
        );
        assert_ne!(job_name("ab", "c", "e"), job_name("a", "bc", "e"));
    }

    #[test]
    fn settings_default_and_errors_name_the_variable() {
        assert_eq!(
            AwsTranscribeSettings::from_lookup(&lookup(&[])).unwrap(),
            None
        );
        assert_eq!(
            AwsTranscribeSettings::from_lookup(&lookup(&[("VOX_SPEECH_ENGINE", "openai")]))
                .unwrap(),
            None
        );
        let defaults = settings(&[]).unwrap().unwrap();
        assert_eq!(defaults, AwsTranscribeSettings::default());
        assert_eq!(defaults.max_speakers, 2);
        assert_eq!(
            defaults.output_location("vox-audio", "vox-1"),
            S3Location {
                bucket: "vox-audio".into(),
                key: "transcribe-output/vox-1.json".into()
            }
        );
        let custom = settings(&[
            ("VOX_TRANSCRIBE_MAX_SPEAKERS", "5"),
            ("VOX_TRANSCRIBE_OUTPUT_BUCKET", "vox-results"),
            ("VOX_TRANSCRIBE_OUTPUT_PREFIX", "jobs"),
            ("VOX_TRANSCRIBE_ENDPOINT_URL", "http://127.0.0.1:4566/"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(custom.max_speakers, 5);
        assert_eq!(
            custom.output_location("vox-audio", "vox-1"),
            S3Location {
                bucket: "vox-results".into(),
                key: "jobs/vox-1.json".into()
            }
        );
        assert_eq!(
            custom.endpoint_url.as_deref(),
            Some("http://127.0.0.1:4566")
        );
        for (var, value) in [
            ("VOX_TRANSCRIBE_MAX_SPEAKERS", "1"),
            ("VOX_TRANSCRIBE_MAX_SPEAKERS", "31"),
            ("VOX_TRANSCRIBE_MAX_SPEAKERS", "two"),
            ("VOX_TRANSCRIBE_OUTPUT_BUCKET", "Vox_Results"),
            ("VOX_TRANSCRIBE_OUTPUT_PREFIX", "a b"),
            ("VOX_TRANSCRIBE_ENDPOINT_URL", "localhost:4566"),
        ] {
            let err = settings(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}={value}: {err}");
        }
    }

    #[test]
    fn media_formats_come_from_the_extension_or_the_content_type() {
        assert_eq!(media_format("a/b.OGG", None), Some(MediaFormat::Ogg));
        assert_eq!(
            media_format("a/b.m4a", Some("audio/mpeg")),
            Some(MediaFormat::M4A)
        );
        assert_eq!(
            media_format("a.b/recording", Some("audio/mpeg; charset=x")),
            Some(MediaFormat::Mp3)
        );
        assert_eq!(media_format("recording", None), None);
        assert_eq!(
            media_format("recording.aiff", Some("application/octet-stream")),
            None
        );
    }

    #[test]
    fn result_uris_name_their_objects() {
        let at = |bucket: &str, key: &str| {
            Some(S3Location {
                bucket: bucket.into(),
                key: key.into(),
            })
        };
        assert_eq!(
            s3_location(
                "https://s3.eu-central-1.amazonaws.com/vox-audio/transcribe-output/vox-1.json"
            ),
            at("vox-audio", "transcribe-output/vox-1.json")
        );
        assert_eq!(
            s3_location("https://vox-audio.s3.eu-central-1.amazonaws.com/out/vox%201.json"),
            at("vox-audio", "out/vox 1.json")
        );
        assert_eq!(s3_location("s3://b/k.json"), at("b", "k.json"));
        assert_eq!(
            s3_location(
                "https://s3.eu-central-1.amazonaws.com/aws-prod-media/x.json?X-Amz-Signature=1"
            ),
            at("aws-prod-media", "x.json")
        );
        assert_eq!(s3_location("https://example.com/b/k"), None);
    }

    const FIXTURE: &str = include_str!("../fixtures/transcribe/two_speakers_ru.json");

    fn expected() -> Vec<(i64, i64, &'static str, i16)> {
        vec![
            (40, 2_210, "Добрый день, меня зовут Анна.", 0),
            (2_250, 3_640, "Чем могу помочь?", 0),
            (4_100, 4_900, "Здравствуйте.", 1),
            (5_000, 6_820, "Я бронировал номер на двое суток", 1),
            (8_000, 8_900, "на имя Петров.", 1),
            (9_120, 10_300, "Да, вижу вашу бронь!", 0),
        ]
    }

    fn summary(transcript: &Transcript) -> Vec<(i64, i64, &str, i16)> {
        transcript
            .segments
            .iter()
            .map(|s| (s.start_ms, s.end_ms, s.text.as_str(), s.speaker_id.unwrap()))
            .collect()
    }

    #[test]
    fn results_with_speakers_on_items_become_segments() {
        let transcript = parse_result(FIXTURE.as_bytes()).unwrap();
        assert_eq!(summary(&transcript), expected());
        assert_eq!(transcript.speakers, 2);
        assert_eq!(transcript.language.as_deref(), Some("ru"));
        assert_eq!(transcript.audio_ms, 10_300);
        assert!(transcript.text.starts_with("Добрый день, меня зовут Анна."));
        assert!(
            transcript
                .segments
                .iter()
                .all(|s| s.speaker.is_none() && s.voice.is_none())
        );
    }

    #[test]
    fn results_with_speakers_only_in_speaker_labels_give_the_same_segments() {
        // The older format: no speaker_label on items, no audio_segments.
        let mut json: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        for item in json["results"]["items"].as_array_mut().unwrap() {
            item.as_object_mut().unwrap().remove("speaker_label");
        }
        json["results"]
            .as_object_mut()
            .unwrap()
            .remove("audio_segments");
        let transcript = parse_result(json.to_string().as_bytes()).unwrap();
        assert_eq!(summary(&transcript), expected());
        // And by segment span when a word is missing from the segment's items.
        for segment in json["results"]["speaker_labels"]["segments"]
            .as_array_mut()
            .unwrap()
        {
            segment["items"] = serde_json::json!([]);
        }
        let transcript = parse_result(json.to_string().as_bytes()).unwrap();
        assert_eq!(summary(&transcript), expected());
    }

    #[test]
    fn results_without_speakers_or_words_still_parse() {
        let mut json: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        for item in json["results"]["items"].as_array_mut().unwrap() {
            item.as_object_mut().unwrap().remove("speaker_label");
        }
        json["results"]
            .as_object_mut()
            .unwrap()
            .remove("speaker_labels");
        let transcript = parse_result(json.to_string().as_bytes()).unwrap();
        assert_eq!(transcript.speakers, 0);
        assert!(transcript.segments.iter().all(|s| s.speaker_id.is_none()));
        // Without speakers, segments end at sentence ends and pauses only: the same here.
        let texts: Vec<&str> = transcript
            .segments
            .iter()
            .map(|s| s.text.as_str())
            .collect();
        let expected_texts: Vec<&str> = expected().iter().map(|e| e.2).collect();
        assert_eq!(texts, expected_texts);

        let empty = parse_result(br#"{"jobName":"vox-1","status":"COMPLETED","results":{"transcripts":[{"transcript":""}],"items":[]}}"#).unwrap();
        assert!(empty.segments.is_empty());
        assert_eq!(empty.audio_ms, 0);
    }

    #[test]
    fn transcribes_own_audio_segments_start_segments_too() {
        let mut json: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        // An audio segment that begins at "бронировал" (item 14), mid-sentence.
        json["results"]["audio_segments"] = serde_json::json!([
            {"id": 0, "items": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]},
            {"id": 1, "items": [14, 15, 16, 17, 18]},
        ]);
        let transcript = parse_result(json.to_string().as_bytes()).unwrap();
        let texts: Vec<&str> = transcript
            .segments
            .iter()
            .map(|s| s.text.as_str())
            .collect();
        assert_eq!(texts[3..5], ["Я", "бронировал номер на двое суток"]);
        assert_eq!(transcript.segments[4].start_ms, 5_100);
    }

    #[test]
    fn transcribes_speakers_are_kept_and_given_roles() {
        let mut segments = parse_result(FIXTURE.as_bytes()).unwrap().segments;
        let evidence = crate::speakers::label_known_speakers(&mut segments, true);
        assert_eq!(evidence.len(), 2);
        let ids: Vec<Option<i16>> = segments.iter().map(|s| s.speaker_id).collect();
        assert_eq!(ids, [Some(0), Some(0), Some(1), Some(1), Some(1), Some(0)]);
        // The one who asks "Чем могу помочь?" is the employee.
        assert_eq!(segments[1].speaker.as_deref(), Some("Сотрудник"));
        assert_eq!(segments[2].speaker.as_deref(), Some("Клиент"));
        let mut plain = parse_result(FIXTURE.as_bytes()).unwrap().segments;
        crate::speakers::label_known_speakers(&mut plain, false);
        assert!(
            plain
                .iter()
                .all(|s| s.speaker.is_none() && s.speaker_id.is_some())
        );
    }

    #[test]
    fn malformed_results_are_permanent_errors_saying_why() {
        for (body, says) in [
            (&b"<html>"[..], "not Transcribe's format"),
            (
                br#"{"results":{"items":[{"type":"pronunciation","alternatives":[{"content":"a"}],"end_time":"1.0"}]}}"#,
                "has no start_time",
            ),
            (
                br#"{"results":{"items":[{"type":"pronunciation","alternatives":[{"content":"a"}],"start_time":"x","end_time":"1.0"}]}}"#,
                "\"x\" is not a number",
            ),
        ] {
            let err = parse_result(body).unwrap_err();
            assert!(!err.is_retryable());
            assert!(err.to_string().contains("aws-transcribe"), "{err}");
            let Error::Provider { reason, .. } = err else { panic!() };
            assert!(reason.contains(says), "{reason}");
        }
    }
}
