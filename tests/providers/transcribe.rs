//! `AwsTranscribe` (the AWS SDK's Transcribe client) against a server speaking Amazon
//! Transcribe's wire protocol, JSON 1.1: `POST /` with the operation in `X-Amz-Target`
//! (`Transcribe.StartTranscriptionJob`, `Transcribe.GetTranscriptionJob`), signed with SigV4
//! (static test credentials), errors as a `__type` and a `Message` in the body.

use std::time::Duration;

use common::speech_aws::{
    AwsTranscribe, AwsTranscribeSettings, JobState, MediaObject, S3Location, job_name, parse_result,
};
use serde_json::{Value, json};
use wiremock::matchers::{header as header_is, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{header, provider_failure, requests};

const START: &str = "Transcribe.StartTranscriptionJob";
const GET: &str = "Transcribe.GetTranscriptionJob";
const ETAG: &str = "de73644a7f88c4c2732938c6637de795";

async fn client(server: &MockServer, settings: AwsTranscribeSettings) -> AwsTranscribe {
    // Region eu-central-1, static credentials `test`/`test`, the endpoint overridden.
    let sdk = common::aws::local(&server.uri()).await;
    AwsTranscribe::new(settings, &sdk).unwrap()
}

fn settings() -> AwsTranscribeSettings {
    AwsTranscribeSettings {
        timeout: Duration::from_secs(5),
        ..AwsTranscribeSettings::default()
    }
}

fn media(language: Option<&str>) -> MediaObject {
    MediaObject {
        bucket: "vox-audio".into(),
        key: "аудит 1/встреча гостя.m4a".into(),
        etag: ETAG.into(),
        content_type: Some("audio/mp4".into()),
        language: language.map(str::to_owned),
    }
}

fn name() -> String {
    job_name("vox-audio", "аудит 1/встреча гостя.m4a", ETAG)
}

/// A `TranscriptionJob` as Transcribe sends it (times as epoch seconds).
fn job(status: &str) -> Value {
    let mut job = json!({
        "TranscriptionJobName": name(),
        "TranscriptionJobStatus": status,
        "LanguageCode": "ru-RU",
        "MediaFormat": "m4a",
        "Media": {"MediaFileUri": "s3://vox-audio/аудит 1/встреча гостя.m4a"},
        "CreationTime": 1_796_950_000.123,
        "StartTime": 1_796_950_000.456,
        "Settings": {"ShowSpeakerLabels": true, "MaxSpeakerLabels": 2,
                     "ChannelIdentification": false, "ShowAlternatives": false},
    });
    match status {
        "COMPLETED" => {
            job["CompletionTime"] = json!(1_796_950_090.5);
            job["Transcript"] = json!({"TranscriptFileUri": format!(
                "https://s3.eu-central-1.amazonaws.com/vox-audio/transcribe-output/{}.json",
                name()
            )});
        }
        "FAILED" => {
            job["CompletionTime"] = json!(1_796_950_001.0);
            job["FailureReason"] = json!(
                "The media format that you specified doesn't match the detected media format. Check the media format and try your request again."
            );
        }
        _ => {}
    }
    json!({"TranscriptionJob": job})
}

/// An error as JSON 1.1 sends it.
fn error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "application/x-amz-json-1.1")
        .insert_header("x-amzn-requestid", "8d2b6f0e-0000-4000-8000-000000000000")
        .set_body_json(json!({"__type": kind, "Message": message}))
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/x-amz-json-1.1")
        .set_body_json(body)
}

async fn mount(server: &MockServer, target: &str, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header_is("x-amz-target", target))
        .respond_with(response)
        .mount(server)
        .await;
}

fn targets(sent: &[wiremock::Request]) -> Vec<&str> {
    sent.iter()
        .map(|r| header(r, "x-amz-target").unwrap())
        .collect()
}

#[tokio::test]
async fn start_is_a_signed_call_on_the_object_in_s3_with_speaker_labels() {
    let server = MockServer::start().await;
    mount(&server, START, ok(job("IN_PROGRESS"))).await;
    let transcribe = client(&server, settings()).await;

    let state = transcribe.start(&media(Some("ru"))).await.unwrap();

    assert_eq!(state, JobState::InProgress { job_name: name() });
    let sent = requests(&server).await;
    assert_eq!(targets(&sent), [START]);
    let authorization = header(&sent[0], "authorization").unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=test/")
            && authorization.contains("/eu-central-1/transcribe/aws4_request"),
        "{authorization}"
    );
    assert_eq!(
        header(&sent[0], "content-type"),
        Some("application/x-amz-json-1.1")
    );
    let body = sent[0].body_json::<Value>().unwrap();
    assert_eq!(body["TranscriptionJobName"], json!(name()));
    assert_eq!(
        body["Media"]["MediaFileUri"],
        json!("s3://vox-audio/аудит 1/встреча гостя.m4a")
    );
    assert_eq!(body["MediaFormat"], json!("m4a"));
    assert_eq!(body["LanguageCode"], json!("ru-RU"));
    assert!(body.get("IdentifyLanguage").is_none(), "{body}");
    assert_eq!(body["Settings"]["ShowSpeakerLabels"], json!(true));
    assert_eq!(body["Settings"]["MaxSpeakerLabels"], json!(2));
    assert_eq!(body["OutputBucketName"], json!("vox-audio"));
    assert_eq!(
        body["OutputKey"],
        json!(format!("transcribe-output/{}.json", name()))
    );
}

#[tokio::test]
async fn an_unknown_language_is_identified_among_russian_and_english() {
    let server = MockServer::start().await;
    mount(&server, START, ok(job("QUEUED"))).await;
    let mut settings = settings();
    settings.max_speakers = 4;
    settings.output_bucket = Some("vox-results".into());
    settings.output_prefix = "jobs/".into();
    let transcribe = client(&server, settings).await;

    let state = transcribe.start(&media(None)).await.unwrap();

    assert_eq!(state, JobState::InProgress { job_name: name() });
    let body = requests(&server).await[0].body_json::<Value>().unwrap();
    assert!(body.get("LanguageCode").is_none(), "{body}");
    assert_eq!(body["IdentifyLanguage"], json!(true));
    assert_eq!(body["LanguageOptions"], json!(["ru-RU", "en-US"]));
    assert_eq!(body["Settings"]["MaxSpeakerLabels"], json!(4));
    assert_eq!(body["OutputBucketName"], json!("vox-results"));
    assert_eq!(body["OutputKey"], json!(format!("jobs/{}.json", name())));
}

#[tokio::test]
async fn a_job_that_exists_is_read_instead_of_started_again() {
    let server = MockServer::start().await;
    mount(
        &server,
        START,
        error(
            400,
            "ConflictException",
            "The requested job name already exists. Use a different job name.",
        ),
    )
    .await;
    mount(&server, GET, ok(job("COMPLETED"))).await;
    let transcribe = client(&server, settings()).await;

    let state = transcribe.start(&media(Some("ru"))).await.unwrap();

    assert_eq!(
        state,
        JobState::Completed {
            job_name: name(),
            transcript_uri: format!(
                "https://s3.eu-central-1.amazonaws.com/vox-audio/transcribe-output/{}.json",
                name()
            ),
            output: Some(S3Location {
                bucket: "vox-audio".into(),
                key: format!("transcribe-output/{}.json", name()),
            }),
        }
    );
    let sent = requests(&server).await;
    assert_eq!(targets(&sent), [START, GET]);
    let body = sent[1].body_json::<Value>().unwrap();
    assert_eq!(body, json!({"TranscriptionJobName": name()}));
}

#[tokio::test]
async fn states_are_in_progress_completed_or_failed_with_transcribes_reason() {
    for (status, expected) in [
        ("QUEUED", JobState::InProgress { job_name: name() }),
        ("IN_PROGRESS", JobState::InProgress { job_name: name() }),
        (
            "FAILED",
            JobState::Failed {
                job_name: name(),
                reason: "The media format that you specified doesn't match the detected media format. Check the media format and try your request again.".into(),
            },
        ),
    ] {
        let server = MockServer::start().await;
        mount(&server, GET, ok(job(status))).await;
        let transcribe = client(&server, settings()).await;
        assert_eq!(transcribe.state(&name()).await.unwrap(), expected, "{status}");
    }
    let server = MockServer::start().await;
    mount(&server, GET, ok(job("COMPLETED"))).await;
    let transcribe = client(&server, settings()).await;
    let JobState::Completed { output, .. } = transcribe.state(&name()).await.unwrap() else {
        panic!("not completed")
    };
    assert_eq!(
        output.unwrap().key,
        format!("transcribe-output/{}.json", name())
    );
}

#[tokio::test]
async fn throttling_quotas_and_internal_failures_are_retryable_without_sdk_retries() {
    for (status, kind) in [
        (400, "ThrottlingException"),
        (400, "LimitExceededException"),
        (500, "InternalFailureException"),
        (503, "ServiceUnavailable"),
    ] {
        let server = MockServer::start().await;
        mount(&server, START, error(status, kind, "Rate exceeded")).await;
        mount(&server, GET, error(status, kind, "Rate exceeded")).await;
        let transcribe = client(&server, settings()).await;

        let (reason, retryable) =
            provider_failure(&transcribe.start(&media(Some("ru"))).await.unwrap_err());
        assert!(retryable, "{kind}: {reason}");
        assert!(
            reason.contains(kind) && reason.contains("Rate exceeded"),
            "{reason}"
        );
        let (_, retryable) = provider_failure(&transcribe.state(&name()).await.unwrap_err());
        assert!(retryable, "{kind}");
        // One try each: the SDK does not retry on top of the queue.
        assert_eq!(targets(&requests(&server).await), [START, GET], "{kind}");
    }
}

#[tokio::test]
async fn a_bad_request_is_permanent_and_quotes_transcribe() {
    let server = MockServer::start().await;
    let message = "The media format that you specified isn't supported: aiff.";
    mount(&server, START, error(400, "BadRequestException", message)).await;
    mount(
        &server,
        GET,
        error(
            400,
            "BadRequestException",
            "The requested job couldn't be found. Check the job name and try your request again.",
        ),
    )
    .await;
    let transcribe = client(&server, settings()).await;

    let err = transcribe.start(&media(Some("ru"))).await.unwrap_err();
    let (reason, retryable) = provider_failure(&err);
    assert!(!retryable);
    assert!(reason.contains("BadRequestException"), "{reason}");
    assert!(reason.contains(message), "{reason}");
    assert!(err.to_string().contains("aws-transcribe"), "{err}");

    let (reason, retryable) = provider_failure(&transcribe.state("vox-none").await.unwrap_err());
    assert!(!retryable);
    assert!(reason.contains("couldn't be found"), "{reason}");
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    // A port nobody listens on (wiremock's pooled servers outlive their handles).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sdk = common::aws::local(&format!("http://127.0.0.1:{port}")).await;
    let transcribe = AwsTranscribe::new(settings(), &sdk).unwrap();
    let (reason, retryable) =
        provider_failure(&transcribe.start(&media(Some("ru"))).await.unwrap_err());
    assert!(retryable, "{reason}");
    assert!(reason.contains("connection"), "{reason}");
}

#[test]
fn the_fixture_result_parses_into_two_speakers() {
    let json = include_bytes!("../../common/fixtures/transcribe/two_speakers_ru.json");
    let transcript = parse_result(json).unwrap();
    assert_eq!(transcript.speakers, 2);
    assert_eq!(transcript.segments[0].text, "Добрый день, меня зовут Анна.");
    assert_eq!(transcript.segments[2].speaker_id, Some(1));
}
