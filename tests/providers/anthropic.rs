//! `AnthropicChat` against a server speaking `POST /v1/messages`.

use std::time::{Duration, Instant};

use common::llm::{
    AnthropicChat, ApiKey, ChatModel, ChatRequest, ChatSettings, FinishReason, Message,
};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{KEY, assert_no_key, header, provider_failure, quick_retries, requests};

const PATH: &str = "/v1/messages";

fn client(server: &MockServer, max_attempts: u32, timeout: Duration) -> AnthropicChat {
    let mut settings = ChatSettings::new("claude-test", server.uri());
    settings.api_key = Some(ApiKey::new(KEY));
    settings.max_tokens = 300;
    settings.temperature = 0.1;
    settings.timeout = timeout;
    settings.retry = quick_retries(max_attempts);
    AnthropicChat::new(settings).unwrap()
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

fn answer(texts: &[&str], stop_reason: &str) -> Value {
    let content: Vec<Value> = texts
        .iter()
        .map(|t| json!({"type": "text", "text": t}))
        .collect();
    json!({
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test-2025",
        "content": content,
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 52, "output_tokens": 9},
    })
}

fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

async fn mount_once(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(response)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(server)
        .await;
}

async fn mount_always(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(response)
        .with_priority(5)
        .mount(server)
        .await;
}

#[tokio::test]
async fn text_blocks_are_joined_and_the_request_follows_the_messages_api() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(answer(&["Приветствие ", "вежливое."], "end_turn")),
    )
    .await;
    let chat = client(&server, 3, Duration::from_secs(5));

    let response = chat.chat(&request()).await.unwrap();

    assert_eq!(response.text, "Приветствие вежливое.");
    assert_eq!(response.finish, FinishReason::Stop);
    assert_eq!(response.model, "claude-test-2025");
    assert_eq!(
        (response.input_tokens, response.output_tokens),
        (Some(52), Some(9))
    );
    assert_eq!(chat.model_id(), "anthropic:claude-test");
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(header(&sent[0], "x-api-key"), Some(KEY));
    assert_eq!(header(&sent[0], "anthropic-version"), Some("2023-06-01"));
    assert_eq!(header(&sent[0], "authorization"), None);
    assert_eq!(header(&sent[0], "content-type"), Some("application/json"));
    let body = sent[0].body_json::<Value>().unwrap();
    assert_eq!(body["model"], "claude-test");
    assert_eq!(body["max_tokens"], 300);
    assert!((body["temperature"].as_f64().unwrap() - 0.1).abs() < 1e-6);
    assert_eq!(body["system"], "Ты аудитор гостиничного сервиса.");
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "Оцени приветствие."},
            {"role": "assistant", "content": "Какое?"},
            {"role": "user", "content": "«Добрый день!»"},
        ])
    );
}

#[tokio::test]
async fn a_rate_limit_waits_as_long_as_retry_after_says() {
    let server = MockServer::start().await;
    mount_once(
        &server,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "1")
            .set_body_json(error_body(
                "rate_limit_error",
                "Number of requests has exceeded your rate limit",
            )),
    )
    .await;
    mount_always(
        &server,
        ResponseTemplate::new(200).set_body_json(answer(&["ok"], "end_turn")),
    )
    .await;
    let chat = client(&server, 3, Duration::from_secs(5));

    let started = Instant::now();
    let response = chat.chat(&request()).await.unwrap();
    let waited = started.elapsed();

    assert_eq!(response.text, "ok");
    assert_eq!(requests(&server).await.len(), 2);
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert!(waited < Duration::from_secs(4), "retried after {waited:?}");
}

#[tokio::test]
async fn server_errors_and_overload_are_retried() {
    let server = MockServer::start().await;
    mount_once(
        &server,
        ResponseTemplate::new(500).set_body_json(error_body("api_error", "Internal server error")),
    )
    .await;
    mount_once(
        &server,
        ResponseTemplate::new(529).set_body_json(error_body("overloaded_error", "Overloaded")),
    )
    .await;
    mount_always(
        &server,
        ResponseTemplate::new(200).set_body_json(answer(&["ok"], "end_turn")),
    )
    .await;
    let chat = client(&server, 4, Duration::from_secs(5));

    let response = chat.chat(&request()).await.unwrap();

    assert_eq!(response.text, "ok");
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn an_overload_that_lasts_gives_up_retryably() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ResponseTemplate::new(529).set_body_json(error_body("overloaded_error", "Overloaded")),
    )
    .await;
    let chat = client(&server, 3, Duration::from_secs(5));

    let (reason, retryable) = provider_failure(&chat.chat(&request()).await.unwrap_err());

    assert!(retryable);
    assert!(
        reason.contains("HTTP 529: Overloaded [overloaded_error]"),
        "{reason}"
    );
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn unauthorized_is_permanent_says_why_and_never_shows_the_key() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ResponseTemplate::new(401).set_body_json(error_body(
            "authentication_error",
            &format!("invalid x-api-key {KEY}"),
        )),
    )
    .await;
    let chat = client(&server, 5, Duration::from_secs(5));

    let error = chat.chat(&request()).await.unwrap_err();

    let (reason, retryable) = provider_failure(&error);
    assert!(!retryable);
    assert_eq!(requests(&server).await.len(), 1);
    assert!(
        reason.contains("401 Unauthorized: invalid x-api-key"),
        "{reason}"
    );
    assert!(reason.contains("authentication_error"), "{reason}");
    assert_no_key(&reason);
    assert_no_key(&format!("{error:?} {chat:?}"));
}

#[tokio::test]
async fn malformed_json_is_retried_once_then_fails_for_good() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ResponseTemplate::new(200)
            .set_body_raw(r#"{"content": [{"type": "text", "te"#, "application/json"),
    )
    .await;
    let chat = client(&server, 5, Duration::from_secs(5));

    let (reason, retryable) = provider_failure(&chat.chat(&request()).await.unwrap_err());

    assert!(!retryable);
    assert!(reason.contains("malformed response"), "{reason}");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_slow_server_times_out_is_retried_then_fails_retryably() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(answer(&["too late"], "end_turn"))
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    let chat = client(&server, 2, Duration::from_millis(300));

    let (reason, retryable) = provider_failure(&chat.chat(&request()).await.unwrap_err());

    assert!(retryable);
    assert!(reason.contains("timeout"), "{reason}");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn an_answer_cut_at_max_tokens_says_length() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(answer(&["Отчёт: приветствие было"], "max_tokens")),
    )
    .await;
    let chat = client(&server, 1, Duration::from_secs(5));
    let mut request = request();
    request.system = None;
    request.max_tokens = Some(5);

    let response = chat.chat(&request).await.unwrap();

    assert_eq!(response.finish, FinishReason::Length);
    let body = requests(&server).await[0].body_json::<Value>().unwrap();
    assert_eq!(body["max_tokens"], 5);
    assert!(body.get("system").is_none(), "{body}");
}
