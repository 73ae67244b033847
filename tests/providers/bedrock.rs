//! `BedrockChat` (the AWS SDK's Converse) against a server speaking Bedrock Runtime's wire
//! protocol: `POST /model/{modelId}/converse` with a JSON body, signed with SigV4 (static
//! test credentials), errors as restJson1 sends them (`x-amzn-errortype` and a `message`).

use std::time::{Duration, Instant};

use common::llm::{BedrockChat, BedrockSettings, ChatModel, ChatRequest, FinishReason, Message};
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{header, provider_failure, quick_retries, requests};

/// An inference profile id: the `:` travels percent-encoded in the path.
const MODEL: &str = "eu.anthropic.claude-test-v1:0";
const PATH: &str = "/model/eu.anthropic.claude-test-v1%3A0/converse";

async fn client(server: &MockServer, max_attempts: u32, timeout: Duration) -> BedrockChat {
    let mut settings = BedrockSettings::new(MODEL);
    settings.max_tokens = 300;
    settings.temperature = 0.1;
    settings.timeout = timeout;
    settings.retry = quick_retries(max_attempts);
    // Region eu-central-1, static credentials `test`/`test`, the endpoint overridden.
    let sdk = common::aws::local(&server.uri()).await;
    BedrockChat::new(settings, &sdk).unwrap()
}

fn request() -> ChatRequest {
    ChatRequest {
        system: Some("Ты аудитор гостиничного сервиса.".into()),
        messages: vec![
            Message::user("Оцени приветствие."),
            Message::assistant("Какое?"),
            Message::user("«Добрый день!»"),
        ],
        max_tokens: None,
        temperature: None,
    }
}

/// A Converse answer as Bedrock sends it.
pub fn answer(texts: &[&str], stop_reason: &str) -> Value {
    let content: Vec<Value> = texts.iter().map(|t| json!({"text": t})).collect();
    json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": {"inputTokens": 52, "outputTokens": 9, "totalTokens": 61},
        "metrics": {"latencyMs": 812},
    })
}

/// An error as Bedrock sends it: the type in `x-amzn-errortype` (with the service's
/// namespace after a colon), the message in the body.
pub fn error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header(
            "x-amzn-errortype",
            format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        )
        .insert_header("x-amzn-requestid", "8d2b6f0e-0000-4000-8000-000000000000")
        .set_body_json(json!({"message": message}))
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

async fn mount_once(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path_regex("^/model/[^/]+/converse$"))
        .respond_with(response)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(server)
        .await;
}

async fn mount_always(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path_regex("^/model/[^/]+/converse$"))
        .respond_with(response)
        .with_priority(5)
        .mount(server)
        .await;
}

#[tokio::test]
async fn the_request_is_a_signed_converse_call_and_text_blocks_are_joined() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ok(answer(&["Приветствие ", "вежливое."], "end_turn")),
    )
    .await;
    let chat = client(&server, 3, Duration::from_secs(5)).await;

    let response = chat.chat(&request()).await.unwrap();

    assert_eq!(response.text, "Приветствие вежливое.");
    assert_eq!(response.finish, FinishReason::Stop);
    assert_eq!(response.model, MODEL);
    assert_eq!(
        (response.input_tokens, response.output_tokens),
        (Some(52), Some(9))
    );
    assert_eq!(chat.model_id(), format!("bedrock:{MODEL}"));
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].url.path(), PATH);
    let authorization = header(&sent[0], "authorization").unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=test/")
            && authorization.contains("/eu-central-1/bedrock/aws4_request"),
        "{authorization}"
    );
    assert!(header(&sent[0], "x-amz-date").is_some());
    assert_eq!(header(&sent[0], "content-type"), Some("application/json"));
    let body = sent[0].body_json::<Value>().unwrap();
    assert_eq!(
        body["system"],
        json!([{"text": "Ты аудитор гостиничного сервиса."}])
    );
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"text": "Оцени приветствие."}]},
            {"role": "assistant", "content": [{"text": "Какое?"}]},
            {"role": "user", "content": [{"text": "«Добрый день!»"}]},
        ])
    );
    assert_eq!(body["inferenceConfig"]["maxTokens"], 300);
    let temperature = body["inferenceConfig"]["temperature"].as_f64().unwrap();
    assert!((temperature - 0.1).abs() < 1e-6, "{body}");
    assert!(
        body.get("modelId").is_none(),
        "the model id is in the path: {body}"
    );
}

#[tokio::test]
async fn throttling_and_unavailability_are_retried_by_the_shared_loop() {
    let server = MockServer::start().await;
    mount_once(
        &server,
        error(
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ),
    )
    .await;
    mount_once(
        &server,
        error(
            503,
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
        ),
    )
    .await;
    mount_always(&server, ok(answer(&["ok"], "end_turn"))).await;
    let chat = client(&server, 4, Duration::from_secs(5)).await;

    let started = Instant::now();
    let response = chat.chat(&request()).await.unwrap();

    assert_eq!(response.text, "ok");
    assert_eq!(requests(&server).await.len(), 3);
    // Two backoffs of quick_retries: at least 10 ms and 20 ms.
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[tokio::test]
async fn throttling_that_lasts_gives_up_retryably_without_sdk_retries_on_top() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        error(
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ),
    )
    .await;
    let chat = client(&server, 3, Duration::from_secs(5)).await;

    let (reason, retryable) = provider_failure(&chat.chat(&request()).await.unwrap_err());

    assert!(retryable);
    assert!(
        reason.contains(
            "HTTP 429 Too Many Requests: Too many requests, please wait before trying again. \
             [ThrottlingException]"
        ),
        "{reason}"
    );
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    // Exactly the policy's attempts: the SDK's own retries are off.
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn model_not_ready_and_internal_errors_are_retried() {
    let server = MockServer::start().await;
    mount_once(
        &server,
        error(429, "ModelNotReadyException", "Model is not ready."),
    )
    .await;
    mount_once(
        &server,
        error(500, "InternalServerException", "Internal failure."),
    )
    .await;
    mount_always(&server, ok(answer(&["ok"], "end_turn"))).await;
    let chat = client(&server, 4, Duration::from_secs(5)).await;

    assert_eq!(chat.chat(&request()).await.unwrap().text, "ok");
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn a_validation_error_is_permanent_and_quoted() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        error(
            400,
            "ValidationException",
            "The model returned the following errors: temperature: range: 0..1",
        ),
    )
    .await;
    let chat = client(&server, 5, Duration::from_secs(5)).await;

    let (reason, retryable) = provider_failure(&chat.chat(&request()).await.unwrap_err());

    assert!(!retryable);
    assert_eq!(
        reason,
        "HTTP 400 Bad Request: The model returned the following errors: temperature: range: \
         0..1 [ValidationException]"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn access_denied_and_an_unknown_model_are_permanent() {
    let cases = [
        (
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
            "HTTP 403 Forbidden: You don't have access",
        ),
        (
            404,
            "ResourceNotFoundException",
            "Model not found.",
            "HTTP 404 Not Found: Model not found. [ResourceNotFoundException]",
        ),
    ];
    for (status, kind, message, expected) in cases {
        let server = MockServer::start().await;
        mount_always(&server, error(status, kind, message)).await;
        let chat = client(&server, 5, Duration::from_secs(5)).await;

        let (reason, retryable) = provider_failure(&chat.chat(&request()).await.unwrap_err());

        assert!(!retryable, "{kind}");
        assert!(reason.contains(expected), "{reason}");
        assert!(reason.contains(kind), "{reason}");
        assert_eq!(requests(&server).await.len(), 1, "{kind}");
    }
}

#[tokio::test]
async fn an_answer_cut_at_max_tokens_says_length() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ok(answer(&["Отчёт: приветствие было"], "max_tokens")),
    )
    .await;
    let chat = client(&server, 1, Duration::from_secs(5)).await;
    let mut request = request();
    request.system = None;
    request.max_tokens = Some(5);
    request.temperature = Some(0.0);

    let response = chat.chat(&request).await.unwrap();

    assert_eq!(response.finish, FinishReason::Length);
    assert_eq!(response.text, "Отчёт: приветствие было");
    let body = requests(&server).await[0].body_json::<Value>().unwrap();
    assert_eq!(body["inferenceConfig"]["maxTokens"], 5);
    assert_eq!(body["inferenceConfig"]["temperature"], 0.0);
    assert!(body.get("system").is_none(), "{body}");
}

#[tokio::test]
async fn a_malformed_body_is_retried_once_then_fails_for_good() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ResponseTemplate::new(200).set_body_raw(
            r#"{"output": {"message": {"role": "assistant", "content": [{"te"#,
            "application/json",
        ),
    )
    .await;
    let chat = client(&server, 5, Duration::from_secs(5)).await;

    let (reason, retryable) = provider_failure(&chat.chat(&request()).await.unwrap_err());

    assert!(!retryable);
    assert!(
        reason.contains("malformed response, twice in a row: not a Converse answer"),
        "{reason}"
    );
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn an_answer_without_text_is_malformed() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ok(json!({
            "output": {"message": {"role": "assistant", "content": []}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 1, "outputTokens": 0, "totalTokens": 1},
            "metrics": {"latencyMs": 1},
        })),
    )
    .await;
    let chat = client(&server, 5, Duration::from_secs(5)).await;

    let (reason, retryable) = provider_failure(&chat.chat(&request()).await.unwrap_err());

    assert!(!retryable);
    assert!(
        reason.contains("the answer has no text content block"),
        "{reason}"
    );
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_slow_answer_times_out_is_retried_then_fails_retryably() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ok(answer(&["too late"], "end_turn")).set_delay(Duration::from_secs(3)),
    )
    .await;
    let chat = client(&server, 2, Duration::from_millis(300)).await;

    let started = Instant::now();
    let (reason, retryable) = provider_failure(&chat.chat(&request()).await.unwrap_err());

    assert!(retryable);
    assert!(reason.contains("timeout"), "{reason}");
    assert_eq!(requests(&server).await.len(), 2);
    assert!(started.elapsed() < Duration::from_secs(3));
}
