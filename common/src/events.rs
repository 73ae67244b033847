//! S3 notifications as they reach the transcribe function: wrapped in SQS messages, or as
//! direct S3 events. Tolerant of what emulators leave out (sequencer, version, identities),
//! strict about what we need (bucket, key, ETag). Amazon Transcribe's job state changes reach
//! the same queue through an EventBridge rule; [`parse_transcribe_event`] tells them apart.

use chrono::{DateTime, Utc};
use percent_encoding::percent_decode_str;
use serde::Deserialize;

use crate::{Error, Result};

/// A created object named by a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    pub bucket: String,
    /// Decoded (`+` is a space, `%XX` are UTF-8 bytes).
    pub key: String,
    pub size: Option<u64>,
    /// Without quotes.
    pub etag: String,
    /// Empty when the bucket is not versioned.
    pub version_id: String,
    /// E.g. `ObjectCreated:Put`, `ObjectCreated:CompleteMultipartUpload`.
    pub event_name: String,
    /// When S3 stored the object (`eventTime`): an upload after its recording failed is a
    /// re-upload, processed again; a redelivered notification of the first upload is not.
    pub event_time: Option<DateTime<Utc>>,
}

/// What one notification body holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `s3:TestEvent`, sent when a notification configuration is set: nothing to do.
    Test,
    /// Created objects (other event kinds in the same body are left out).
    Objects(Vec<ObjectCreated>),
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "Event")]
    event: Option<String>,
    #[serde(rename = "Records")]
    records: Option<Vec<Record>>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventName", default)]
    event_name: String,
    #[serde(rename = "eventTime", default)]
    event_time: Option<String>,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: BucketEntity,
    object: ObjectEntity,
}

#[derive(Deserialize)]
struct BucketEntity {
    name: String,
}

#[derive(Deserialize)]
struct ObjectEntity {
    key: String,
    size: Option<u64>,
    #[serde(rename = "eTag")]
    etag: Option<String>,
    #[serde(rename = "versionId")]
    version_id: Option<String>,
}

/// Parses the JSON of an S3 notification (the body of an SQS message, or a direct event).
pub fn parse_notification(json: &str) -> Result<Notification> {
    let bad = |reason: String| Error::BadEvent { reason };
    let body: Body =
        serde_json::from_str(json).map_err(|e| bad(format!("not an S3 notification: {e}")))?;
    if body.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Notification::Test);
    }
    let records = body
        .records
        .ok_or_else(|| bad("no Records in the notification".into()))?;
    let mut objects = Vec::with_capacity(records.len());
    for r in records {
        // Deletions and other kinds may share a queue with creations; they are not ours.
        if !r.event_name.starts_with("ObjectCreated:") {
            continue;
        }
        let key = decode_key(&r.s3.object.key)?;
        let etag =
            r.s3.object
                .etag
                .filter(|e| !e.is_empty())
                .ok_or_else(|| bad(format!("object {key} has no eTag")))?;
        objects.push(ObjectCreated {
            bucket: r.s3.bucket.name,
            key,
            size: r.s3.object.size,
            etag: etag.trim_matches('"').to_owned(),
            version_id: r.s3.object.version_id.unwrap_or_default(),
            event_name: r.event_name,
            // A time that does not parse is no time: such a notification is never taken for
            // a re-upload.
            event_time: r
                .event_time
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc)),
        });
    }
    Ok(Notification::Objects(objects))
}

/// The body of an S3 notification naming `object`, as S3 would send it (the key encoded as
/// S3 encodes it): how the sweeper puts a recording back on the transcribe queue.
pub fn notification_body(object: &ObjectCreated) -> serde_json::Value {
    let key =
        percent_encoding::utf8_percent_encode(&object.key, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let mut entity = serde_json::json!({ "key": key, "eTag": object.etag });
    if let Some(size) = object.size {
        entity["size"] = size.into();
    }
    if !object.version_id.is_empty() {
        entity["versionId"] = object.version_id.clone().into();
    }
    let mut record = serde_json::json!({
        "eventSource": "vox:sweeper",
        "eventName": object.event_name,
        "s3": { "bucket": { "name": object.bucket }, "object": entity },
    });
    if let Some(t) = object.event_time {
        record["eventTime"] = t
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into();
    }
    serde_json::json!({ "Records": [record] })
}

/// What an Amazon Transcribe job ended as, by its EventBridge event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscribeJobStatus {
    Completed,
    Failed,
}

/// A "Transcribe Job State Change" event: a job finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscribeJobEvent {
    pub job_name: String,
    pub status: TranscribeJobStatus,
    /// `detail.FailureReason`, when a failed job's event carries one (GetTranscriptionJob
    /// always does).
    pub failure_reason: Option<String>,
    /// The event's `time`.
    pub time: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct EventBridgeEnvelope {
    source: Option<String>,
    #[serde(rename = "detail-type")]
    detail_type: Option<String>,
    time: Option<String>,
    detail: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct TranscribeDetail {
    #[serde(rename = "TranscriptionJobName")]
    job_name: String,
    #[serde(rename = "TranscriptionJobStatus")]
    status: String,
    #[serde(rename = "FailureReason")]
    failure_reason: Option<String>,
}

/// The Amazon Transcribe job state change in `json` (an SQS message body an EventBridge rule
/// delivered), `Ok(None)` when the body is something else (an S3 notification), an error
/// when it is Transcribe's event but not one this stage can act on.
pub fn parse_transcribe_event(json: &str) -> Result<Option<TranscribeJobEvent>> {
    let bad = |reason: String| Error::BadEvent { reason };
    let Ok(envelope) = serde_json::from_str::<EventBridgeEnvelope>(json) else {
        return Ok(None);
    };
    if envelope.source.as_deref() != Some("aws.transcribe") {
        return Ok(None);
    }
    let detail_type = envelope.detail_type.unwrap_or_default();
    if detail_type != "Transcribe Job State Change" {
        return Err(bad(format!(
            "an Amazon Transcribe event of type {detail_type:?}, not a job state change"
        )));
    }
    let detail: TranscribeDetail = envelope
        .detail
        .ok_or_else(|| bad("the Transcribe job state change has no detail".into()))
        .and_then(|d| {
            serde_json::from_value(d)
                .map_err(|e| bad(format!("the Transcribe job state change's detail: {e}")))
        })?;
    if detail.job_name.is_empty() {
        return Err(bad("the Transcribe job state change names no job".into()));
    }
    let status = match detail.status.as_str() {
        "COMPLETED" => TranscribeJobStatus::Completed,
        "FAILED" => TranscribeJobStatus::Failed,
        other => {
            return Err(bad(format!(
                "Transcribe job {} changed to {other:?}, not COMPLETED or FAILED",
                detail.job_name
            )));
        }
    };
    Ok(Some(TranscribeJobEvent {
        job_name: detail.job_name,
        status,
        failure_reason: detail.failure_reason.filter(|r| !r.is_empty()),
        time: envelope
            .time
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)),
    }))
}

/// Decodes an object key as S3 notifications encode it: `+` is a space, `%XX` a byte.
pub fn decode_key(raw: &str) -> Result<String> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|e| Error::BadEvent {
            reason: format!("object key {raw:?} is not UTF-8 once decoded: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    // As an emulator delivered them (see infra/local/MOTO.md).
    const PUT: &str = r#"{"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-central-1", "eventTime": "2026-11-27T20:52:14.252Z", "eventName": "ObjectCreated:Put", "s3": {"s3SchemaVersion": "1.0", "configurationId": "transcribe", "bucket": {"name": "vox-audio", "arn": "arn:aws:s3:::vox-audio"}, "object": {"key": "%D0%B0%D1%83%D0%B4%D0%B8%D1%82+1%2F%D0%B7%D0%B0%D0%BF%D0%B8%D1%81%D1%8C+%D1%91.ogg", "size": 1004, "eTag": "de73644a7f88c4c2732938c6637de795"}}}]}"#;

    #[test]
    fn a_requeued_notification_parses_back_to_its_object() {
        let object = ObjectCreated {
            bucket: "vox-recordings".into(),
            key: "recordings/аудит 1/a+b %25.ogg".into(),
            size: Some(1004),
            etag: "de73644a7f88c4c2732938c6637de795".into(),
            version_id: "v1".into(),
            event_name: "ObjectCreated:Put".into(),
            event_time: "2026-11-27T20:52:14.252Z".parse().ok(),
        };
        assert_eq!(
            parse_notification(&notification_body(&object).to_string()).unwrap(),
            Notification::Objects(vec![object])
        );
    }

    #[test]
    fn keys_are_decoded_with_plus_as_space() {
        let Notification::Objects(objects) = parse_notification(PUT).unwrap() else {
            panic!()
        };
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].key, "аудит 1/запись ё.ogg");
        assert_eq!(objects[0].bucket, "vox-audio");
        assert_eq!(objects[0].etag, "de73644a7f88c4c2732938c6637de795");
        assert_eq!(objects[0].size, Some(1004));
        assert_eq!(objects[0].version_id, "");
        assert_eq!(decode_key("a%2Bb+c").unwrap(), "a+b c");
    }

    #[test]
    fn test_events_and_other_kinds_are_nothing_to_do() {
        let test = r#"{"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-27T20:52:14Z", "Bucket": "vox-audio"}"#;
        assert_eq!(parse_notification(test).unwrap(), Notification::Test);
        let removed = PUT.replace("ObjectCreated:Put", "ObjectRemoved:Delete");
        assert_eq!(
            parse_notification(&removed).unwrap(),
            Notification::Objects(vec![])
        );
    }

    #[test]
    fn malformed_bodies_are_errors_saying_what_is_wrong() {
        let err = parse_notification("hello").unwrap_err().to_string();
        assert!(err.contains("not an S3 notification"), "{err}");
        let err = parse_notification("{}").unwrap_err().to_string();
        assert!(err.contains("no Records"), "{err}");
        let err =
            parse_notification(&PUT.replace(r#", "eTag": "de73644a7f88c4c2732938c6637de795""#, ""))
                .unwrap_err()
                .to_string();
        assert!(err.contains("has no eTag"), "{err}");
        let err = parse_notification(&PUT.replace("%D1%91.ogg", "%FF.ogg"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not UTF-8"), "{err}");
    }

    // As EventBridge delivers a rule's match to an SQS target: the event is the body.
    const JOB_COMPLETED: &str = r#"{"version":"0","id":"1a2b3c4d-0000-4000-8000-5e6f7a8b9c0d","detail-type":"Transcribe Job State Change","source":"aws.transcribe","account":"123456789012","time":"2026-12-08T01:02:03Z","region":"eu-central-1","resources":[],"detail":{"TranscriptionJobName":"vox-3f1c0d9a6b2e4f708192a3b4c5d6e7f8","TranscriptionJobStatus":"COMPLETED"}}"#;

    #[test]
    fn transcribe_job_state_changes_are_told_from_s3_notifications() {
        let event = parse_transcribe_event(JOB_COMPLETED).unwrap().unwrap();
        assert_eq!(
            event,
            TranscribeJobEvent {
                job_name: "vox-3f1c0d9a6b2e4f708192a3b4c5d6e7f8".into(),
                status: TranscribeJobStatus::Completed,
                failure_reason: None,
                time: "2026-12-08T01:02:03Z".parse().ok(),
            }
        );
        let failed = JOB_COMPLETED.replace(
            r#""TranscriptionJobStatus":"COMPLETED""#,
            r#""TranscriptionJobStatus":"FAILED","FailureReason":"Unsupported audio format""#,
        );
        let event = parse_transcribe_event(&failed).unwrap().unwrap();
        assert_eq!(event.status, TranscribeJobStatus::Failed);
        assert_eq!(
            event.failure_reason.as_deref(),
            Some("Unsupported audio format")
        );
        // S3 notifications, test events and what is not JSON are not Transcribe's.
        assert_eq!(parse_transcribe_event(PUT).unwrap(), None);
        assert_eq!(
            parse_transcribe_event(r#"{"Event": "s3:TestEvent"}"#).unwrap(),
            None
        );
        assert_eq!(parse_transcribe_event("hello").unwrap(), None);
        // And an S3 notification is still parsed as one.
        assert!(matches!(
            parse_notification(PUT).unwrap(),
            Notification::Objects(o) if o.len() == 1
        ));
    }

    #[test]
    fn transcribe_events_this_stage_cannot_act_on_are_errors_saying_why() {
        let queued = JOB_COMPLETED.replace("COMPLETED", "IN_PROGRESS");
        let err = parse_transcribe_event(&queued).unwrap_err().to_string();
        assert!(
            err.contains("\"IN_PROGRESS\", not COMPLETED or FAILED"),
            "{err}"
        );
        let other = JOB_COMPLETED.replace(
            "Transcribe Job State Change",
            "Call Analytics Job State Change",
        );
        let err = parse_transcribe_event(&other).unwrap_err().to_string();
        assert!(err.contains("not a job state change"), "{err}");
        let nameless = JOB_COMPLETED.replace("TranscriptionJobName", "JobName");
        let err = parse_transcribe_event(&nameless).unwrap_err().to_string();
        assert!(err.contains("TranscriptionJobName"), "{err}");
        let err = parse_transcribe_event(
            r#"{"source":"aws.transcribe","detail-type":"Transcribe Job State Change"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no detail"), "{err}");
    }
}
