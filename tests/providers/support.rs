//! What the provider tests share: quick retry policies and error inspection.

use std::time::Duration;

use common::Error;
use common::llm::RetryPolicy;
use wiremock::{MockServer, Request};

/// A key that must never show up in an error.
pub const KEY: &str = "sk-test-Zq8w3Xr5Tn2Lp9Vb6Hj4";

/// Retries without the production waits: backoff in tens of milliseconds, `retry-after`
/// honoured up to 5 s.
pub fn quick_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        max_elapsed: Duration::from_secs(30),
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(5),
    }
}

/// The reason and retryability of a provider error; panics on any other error.
pub fn provider_failure(error: &Error) -> (String, bool) {
    match error {
        Error::Provider {
            reason, retryable, ..
        } => (reason.clone(), *retryable),
        other => panic!("not a provider error: {other:?}"),
    }
}

/// Asserts that `text` holds no trace of [`KEY`] (not even its masked form's ends).
pub fn assert_no_key(text: &str) {
    assert!(!text.contains(KEY), "the key leaked: {text}");
    assert!(!text.contains(&KEY[..10]), "the key's start leaked: {text}");
    assert!(
        !text.contains(&KEY[KEY.len() - 4..]),
        "the key's end leaked: {text}"
    );
}

pub async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap()
}

pub fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).map(|v| v.to_str().unwrap())
}
