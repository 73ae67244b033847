//! `OpenAiChat` against a server speaking `POST /v1/chat/completions`.

use std::time::{Duration, Instant};

use common::llm::{
    ApiKey, ChatModel, ChatRequest, ChatSettings, FinishReason, Message, OpenAiChat,
};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{KEY, assert_no_key, header, provider_failure, quick_retries, requests};

const PATH: &str = "/v1/chat/completions";

fn client(server: &MockServer, max_attempts: u32, timeout: Duration) -> OpenAiChat {
    let mut settings = ChatSettings::new("gpt-test", format!("{}/v1", server.uri()));
    settings.api_key = Some(ApiKey::new(KEY));
    settings.max_tokens = 256;
    settings.timeout = timeout;
    settings.retry = quick_retries(max_attempts);
    OpenAiChat::new(settings).unwrap()
}

fn request() -> ChatRequest {
    ChatRequest {
        system: Some("Ты аудитор гостиничного сервиса.".into()),
        messages: vec![Message::user("Оцени приветствие: «Добрый день!»")],
        max_tokens: None,
        temperature: None,
    }
}

fn completion(text: &str, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-test-2025",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
        }],
        "usage": {"prompt_tokens": 41, "completion_tokens": 5, "total_tokens": 46},
    })
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
async fn a_completion_is_returned_and_the_request_carries_model_messages_and_key() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ResponseTemplate::new(200).set_body_json(completion("Приветствие вежливое.", "stop")),
    )
    .await;
    let chat = client(&server, 3, Duration::from_secs(5));

    let answer = chat.chat(&request()).await.unwrap();

    assert_eq!(answer.text, "Приветствие вежливое.");
    assert_eq!(answer.finish, FinishReason::Stop);
    assert_eq!(answer.model, "gpt-test-2025");
    assert_eq!(
        (answer.input_tokens, answer.output_tokens),
        (Some(41), Some(5))
    );
    assert_eq!(chat.model_id(), "openai:gpt-test");
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        header(&sent[0], "authorization"),
        Some(&*format!("Bearer {KEY}"))
    );
    assert_eq!(header(&sent[0], "content-type"), Some("application/json"));
    assert_eq!(
        sent[0].body_json::<Value>().unwrap(),
        json!({
            "model": "gpt-test",
            "messages": [
                {"role": "system", "content": "Ты аудитор гостиничного сервиса."},
                {"role": "user", "content": "Оцени приветствие: «Добрый день!»"},
            ],
            "temperature": 0.0,
            "max_tokens": 256,
        })
    );
}

#[tokio::test]
async fn a_local_server_gets_no_authorization_header() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ResponseTemplate::new(200).set_body_json(completion("ok", "stop")),
    )
    .await;
    let mut settings = ChatSettings::new("llama3", format!("{}/v1/", server.uri()));
    settings.retry = quick_retries(1);
    let chat = OpenAiChat::new(settings).unwrap();

    chat.chat(&request()).await.unwrap();

    let sent = requests(&server).await;
    assert_eq!(header(&sent[0], "authorization"), None);
    assert_eq!(sent[0].url.path(), PATH);
}

#[tokio::test]
async fn a_rate_limit_waits_as_long_as_retry_after_says() {
    let server = MockServer::start().await;
    mount_once(
        &server,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "1")
            .set_body_json(json!({"error": {"message": "Rate limit reached", "type": "requests"}})),
    )
    .await;
    mount_always(
        &server,
        ResponseTemplate::new(200).set_body_json(completion("ok", "stop")),
    )
    .await;
    let chat = client(&server, 3, Duration::from_secs(5));

    let started = Instant::now();
    let answer = chat.chat(&request()).await.unwrap();
    let waited = started.elapsed();

    assert_eq!(answer.text, "ok");
    assert_eq!(requests(&server).await.len(), 2);
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert!(waited < Duration::from_secs(4), "retried after {waited:?}");
}

#[tokio::test]
async fn a_server_error_is_retried() {
    let server = MockServer::start().await;
    mount_once(
        &server,
        ResponseTemplate::new(500).set_body_string("upstream exploded"),
    )
    .await;
    mount_always(
        &server,
        ResponseTemplate::new(200).set_body_json(completion("ok", "stop")),
    )
    .await;
    let chat = client(&server, 3, Duration::from_secs(5));

    let answer = chat.chat(&request()).await.unwrap();

    assert_eq!(answer.text, "ok");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn unauthorized_is_permanent_says_why_and_never_shows_the_key() {
    let server = MockServer::start().await;
    let masked = format!("{}****************{}", &KEY[..8], &KEY[KEY.len() - 4..]);
    mount_always(
        &server,
        ResponseTemplate::new(401).set_body_json(json!({"error": {
            "message": format!("Incorrect API key provided: {masked}. You sent {KEY}."),
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }})),
    )
    .await;
    let chat = client(&server, 5, Duration::from_secs(5));

    let error = chat.chat(&request()).await.unwrap_err();

    let (reason, retryable) = provider_failure(&error);
    assert!(!retryable);
    assert_eq!(requests(&server).await.len(), 1);
    assert!(reason.contains("401 Unauthorized"), "{reason}");
    assert!(reason.contains("Incorrect API key provided"), "{reason}");
    assert!(reason.contains("invalid_api_key"), "{reason}");
    assert_no_key(&reason);
    assert_no_key(&error.to_string());
    assert_no_key(&format!("{error:?} {chat:?}"));
}

#[tokio::test]
async fn a_bad_request_is_permanent() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
            "type": "invalid_request_error",
        }})),
    )
    .await;
    let chat = client(&server, 5, Duration::from_secs(5));

    let (reason, retryable) = provider_failure(&chat.chat(&request()).await.unwrap_err());

    assert!(!retryable);
    assert!(
        reason.contains("400 Bad Request: Unsupported parameter"),
        "{reason}"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn malformed_json_is_retried_once_then_fails_for_good() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ResponseTemplate::new(200).set_body_raw("<html>gateway</html>", "text/html"),
    )
    .await;
    let chat = client(&server, 5, Duration::from_secs(5));

    let (reason, retryable) = provider_failure(&chat.chat(&request()).await.unwrap_err());

    assert!(!retryable);
    assert!(reason.contains("malformed response"), "{reason}");
    assert!(reason.contains("not a chat completion"), "{reason}");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_missing_content_is_an_error_that_says_so() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ResponseTemplate::new(200).set_body_json(
            json!({"choices": [{"message": {"role": "assistant"}, "finish_reason": "stop"}]}),
        ),
    )
    .await;
    let chat = client(&server, 5, Duration::from_secs(5));

    let (reason, _) = provider_failure(&chat.chat(&request()).await.unwrap_err());

    assert!(
        reason.contains("choices[0].message.content is missing"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_slow_server_times_out_is_retried_then_fails_retryably() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(completion("too late", "stop"))
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    let chat = client(&server, 2, Duration::from_millis(300));

    let started = Instant::now();
    let error = chat.chat(&request()).await.unwrap_err();

    let (reason, retryable) = provider_failure(&error);
    assert!(retryable);
    assert!(reason.contains("timeout"), "{reason}");
    assert!(reason.contains("gave up after 2 attempts"), "{reason}");
    assert_eq!(requests(&server).await.len(), 2);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn an_answer_cut_at_the_token_limit_says_length() {
    let server = MockServer::start().await;
    mount_always(
        &server,
        ResponseTemplate::new(200).set_body_json(completion("Отчёт: приветствие было", "length")),
    )
    .await;
    let chat = client(&server, 1, Duration::from_secs(5));
    let mut request = request();
    request.max_tokens = Some(5);
    request.temperature = Some(0.7);

    let answer = chat.chat(&request).await.unwrap();

    assert_eq!(answer.finish, FinishReason::Length);
    let body = requests(&server).await[0].body_json::<Value>().unwrap();
    assert_eq!(body["max_tokens"], 5);
    assert!((body["temperature"].as_f64().unwrap() - 0.7).abs() < 1e-6);
}

#[tokio::test]
async fn a_server_that_is_down_is_retried_and_named() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut settings = ChatSettings::new("gpt-test", format!("http://127.0.0.1:{port}/v1"));
    settings.retry = quick_retries(3);
    let chat = OpenAiChat::new(settings).unwrap();

    let error = chat.chat(&request()).await.unwrap_err();

    let (reason, retryable) = provider_failure(&error);
    assert!(retryable);
    assert!(
        reason.contains(&format!(
            "could not connect to http://127.0.0.1:{port}/v1/chat/completions"
        )),
        "{reason}"
    );
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
}
