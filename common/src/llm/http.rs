//! The HTTP core every hosted client shares: one rustls client (aws-lc-rs, the webpki roots),
//! and one retry loop (`Retrier`, which Bedrock's client runs around its AWS SDK calls too).
//!
//! # What is retried
//!
//! - **Transient**, retried with exponential backoff and jitter: 408, 429 (unless the
//!   provider says the quota is exhausted, which waiting does not fix), every 5xx (Anthropic's
//!   529 "overloaded" among them), an `overloaded_error` whatever its status, timeouts,
//!   refused or dropped connections. A `retry-after` (or `retry-after-ms`) header, in
//!   seconds or as an HTTP date, replaces the backoff, cut to
//!   [`RetryPolicy::max_retry_after`].
//! - **Permanent**, returned at once: every other 4xx (400, 401, 403, 404, 413, 422...). The
//!   reason quotes the status and the provider's own error message, truncated.
//! - **Malformed**: a 2xx whose body is not the JSON the client expects (a proxy's HTML page,
//!   a cut body, a missing `choices[0].message.content`). Retried once, since a gateway
//!   hiccup explains one; a second one in the same call means an incompatible server, and
//!   the error is permanent (`retryable: false`) so the job fails with that reason instead
//!   of being redelivered for nothing.
//!
//! A call gives up after [`RetryPolicy::max_attempts`] tries, or before a wait that would
//! take it past [`RetryPolicy::max_elapsed`]; the error is then retryable (the queue may try
//! again later) and says how many attempts were made.
//!
//! # Keys
//!
//! Keys live in [`ApiKey`], whose `Debug` prints `***`, and travel in headers marked
//! sensitive. Every reason is scrubbed before it leaves this module: the key itself and
//! anything shaped like an OpenAI or Anthropic key (`sk-...`, which OpenAI's 401 message
//! quotes half-masked) become `[redacted]`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Client, RequestBuilder, StatusCode, Url};
use serde_json::Value;
use tracing::warn;

use crate::{Error, Result};

/// How much of a provider's error message a reason quotes.
const MAX_MESSAGE_CHARS: usize = 300;

/// An API key. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into().trim().to_owned())
    }

    /// The key itself, for the request header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// When to try again, and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (at least 1).
    pub max_attempts: u32,
    /// No wait may take a call past this much time since its first try.
    pub max_elapsed: Duration,
    /// The first backoff; it doubles with every retry, up to `max_delay`, and is jittered
    /// down by up to half.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest `retry-after` honoured; a longer one is cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            max_elapsed: Duration::from_secs(300),
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry); `unit` in [0, 1) picks
    /// the jitter: "equal jitter", between half and all of the exponential delay.
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        let exponential = self.base_delay.saturating_mul(factor).min(self.max_delay);
        exponential.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }
}

/// A number in [0, 1) that differs from call to call: std's randomly keyed SipHash over the
/// clock, which is all jitter needs (no RNG dependency).
fn jitter_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The wait a response asks for: `retry-after-ms` (sent by some OpenAI-compatible
/// gateways), else `retry-after` in seconds or as an HTTP date (a date in the past is no
/// wait). `None` when absent or unreadable.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = header("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(date.timestamp()).ok()?);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What the provider said in an error body.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ProviderDetail {
    /// `error.message` (OpenAI, Anthropic), `error` as a string (Ollama), `message` (vLLM),
    /// `detail` (FastAPI servers), or the body's text when it is not JSON.
    pub message: Option<String>,
    /// `error.type` and `error.code` (`rate_limit_error`, `insufficient_quota`...).
    pub kinds: Vec<String>,
}

impl ProviderDetail {
    pub(crate) fn from_body(body: &[u8]) -> Self {
        let Ok(json) = serde_json::from_slice::<Value>(body) else {
            let text = String::from_utf8_lossy(body);
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            return Self {
                message: (!text.is_empty()).then_some(text),
                kinds: Vec::new(),
            };
        };
        let error = json.get("error");
        let text = |v: Option<&Value>| -> Option<String> {
            match v? {
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                Value::Null | Value::String(_) => None,
                other => Some(other.to_string()),
            }
        };
        let message = text(error.and_then(|e| e.get("message")))
            .or_else(|| error.filter(|e| e.is_string()).and_then(|e| text(Some(e))))
            .or_else(|| text(json.get("message")))
            .or_else(|| text(json.get("detail")));
        let kinds = ["type", "code"]
            .iter()
            .filter_map(|field| error.and_then(|e| e.get(*field)).and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        Self { message, kinds }
    }

    fn has_kind(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == kind)
    }
}

/// Whether a non-2xx answer is worth another try.
pub(crate) fn is_retryable_status(status: StatusCode, detail: &ProviderDetail) -> bool {
    if detail.has_kind("insufficient_quota") {
        // OpenAI sends it as a 429, but only paying fixes it.
        return false;
    }
    if detail.has_kind("overloaded_error") {
        return true;
    }
    matches!(status.as_u16(), 408 | 429 | 500..=599)
}

/// `HTTP 401 Unauthorized: <the provider's message> [its error type]`.
pub(crate) fn status_reason(status: StatusCode, detail: &ProviderDetail) -> String {
    let mut reason = format!("HTTP {}", status.as_u16());
    if let Some(canonical) = status.canonical_reason() {
        reason.push(' ');
        reason.push_str(canonical);
    }
    if let Some(message) = &detail.message {
        reason.push_str(": ");
        reason.push_str(&truncate(message, MAX_MESSAGE_CHARS));
    }
    if !detail.kinds.is_empty() {
        reason.push_str(&format!(" [{}]", detail.kinds.join(", ")));
    }
    reason
}

/// At most `max` characters, with an ellipsis when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

/// `text` with `secret` and anything shaped like a provider key replaced by `[redacted]`.
pub(crate) fn redact(text: &str, secret: Option<&ApiKey>) -> String {
    let mut out = match secret.map(ApiKey::expose) {
        Some(key) if key.len() >= 4 => text.replace(key, "[redacted]"),
        _ => text.to_owned(),
    };
    // OpenAI's 401 quotes the key half-masked (`sk-proj-abc***********xyz`): still too much.
    let mut from = 0;
    while let Some(found) = out[from..].find("sk-") {
        let start = from + found;
        let token_end = out[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*')))
            .map_or(out.len(), |n| start + n);
        let at_word_start = out[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_ascii_alphanumeric());
        if at_word_start && token_end - start > 6 {
            out.replace_range(start..token_end, "[redacted]");
            from = start + "[redacted]".len();
        } else {
            from = start + 3;
        }
    }
    out
}

/// Why one try failed.
#[derive(Debug)]
pub(crate) enum Failure {
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    Malformed(String),
    Permanent(String),
}

/// The retry loop every hosted client shares, whatever carries its requests (reqwest for the
/// HTTP clients, the AWS SDK for Bedrock): the backoff, the budget, the malformed-once rule
/// and the messages are the module's, once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retrier<'a> {
    /// Names the provider in errors and logs.
    pub provider: &'static str,
    pub policy: &'a RetryPolicy,
    /// Redacted from every reason.
    pub secret: Option<&'a ApiKey>,
}

impl Retrier<'_> {
    pub(crate) fn error(&self, reason: impl AsRef<str>, retryable: bool) -> Error {
        Error::Provider {
            provider: self.provider.to_owned(),
            reason: redact(reason.as_ref(), self.secret),
            retryable,
        }
    }

    /// Runs `try_once` until it succeeds, fails for good, or the policy says to stop.
    pub(crate) async fn run<T, F, Fut>(&self, mut try_once: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let max_attempts = self.policy.max_attempts.max(1);
        let started = Instant::now();
        let mut malformed_before = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let failure = match try_once().await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            let (reason, retry_after, retryable) = match failure {
                Failure::Permanent(reason) => return Err(self.error(reason, false)),
                Failure::Malformed(reason) if malformed_before => {
                    return Err(self.error(
                        format!("malformed response, twice in a row: {reason}"),
                        false,
                    ));
                }
                Failure::Malformed(reason) => {
                    malformed_before = true;
                    (format!("malformed response: {reason}"), None, false)
                }
                Failure::Transient {
                    reason,
                    retry_after,
                } => (reason, retry_after, true),
            };
            if attempt >= max_attempts {
                return Err(self.error(
                    format!("{reason} (gave up after {attempt} attempts)"),
                    retryable,
                ));
            }
            let wait = match retry_after {
                Some(asked) => asked.min(self.policy.max_retry_after),
                None => self.policy.backoff(attempt, jitter_unit()),
            };
            let elapsed = started.elapsed();
            if elapsed + wait > self.policy.max_elapsed {
                return Err(self.error(
                    format!(
                        "{reason} (gave up after {attempt} attempts in {:.1} s: waiting {:.1} s more \
                         would pass the {:.0} s retry budget)",
                        elapsed.as_secs_f64(),
                        wait.as_secs_f64(),
                        self.policy.max_elapsed.as_secs_f64()
                    ),
                    retryable,
                ));
            }
            warn!(
                provider = self.provider,
                attempt,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                reason = %redact(&reason, self.secret),
                "provider request failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// A rustls client configuration with the workspace's one crypto provider (aws-lc-rs) and
/// the Mozilla roots compiled in, so it works the same on any image.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// One provider's HTTP client and retry loop.
#[derive(Debug)]
pub(crate) struct HttpCore {
    client: Client,
    /// Names the provider in errors and logs (`openai`, `anthropic`...).
    provider: &'static str,
    timeout: Duration,
    policy: RetryPolicy,
    secret: Option<ApiKey>,
}

impl HttpCore {
    /// `timeout` bounds each try, from connecting to the last byte of the answer.
    pub(crate) fn new(
        provider: &'static str,
        timeout: Duration,
        policy: RetryPolicy,
        secret: Option<ApiKey>,
    ) -> Result<Self> {
        let fail = |reason: String| Error::Provider {
            provider: provider.to_owned(),
            reason,
            retryable: false,
        };
        let tls = tls_config().map_err(|e| fail(format!("TLS setup failed: {e}")))?;
        let client = Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("voxpersona/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                fail(format!(
                    "could not build the HTTP client: {}",
                    crate::error::chain(&e)
                ))
            })?;
        Ok(Self {
            client,
            provider,
            timeout,
            policy: RetryPolicy {
                max_attempts: policy.max_attempts.max(1),
                ..policy
            },
            secret,
        })
    }

    pub(crate) fn provider(&self) -> &'static str {
        self.provider
    }

    /// A header value carrying the key, marked sensitive (hidden from `Debug`).
    pub(crate) fn secret_header(&self, prefix: &str) -> Result<Option<HeaderValue>> {
        let Some(key) = &self.secret else {
            return Ok(None);
        };
        let mut value = HeaderValue::from_str(&format!("{prefix}{}", key.expose()))
            .map_err(|_| self.error("the API key holds characters a header cannot carry", false))?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    pub(crate) fn error(&self, reason: impl AsRef<str>, retryable: bool) -> Error {
        Retrier {
            provider: self.provider,
            policy: &self.policy,
            secret: self.secret.as_ref(),
        }
        .error(reason, retryable)
    }

    /// POSTs to `url` (`build` adds headers and body; it runs once per try) and parses a 2xx
    /// body with `parse` (an `Err` is a malformed answer), retrying as the module says.
    pub(crate) async fn post<T>(
        &self,
        url: &Url,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
        parse: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<T> {
        let retrier = Retrier {
            provider: self.provider,
            policy: &self.policy,
            secret: self.secret.as_ref(),
        };
        retrier.run(|| self.try_once(url, &build, &parse)).await
    }

    async fn try_once<T>(
        &self,
        url: &Url,
        build: &impl Fn(RequestBuilder) -> RequestBuilder,
        parse: &impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<T, Failure> {
        let response = build(self.client.post(url.clone()))
            .send()
            .await
            .map_err(|e| self.transport_failure(e, url))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_failure(e, url))?;
        if status.is_success() {
            return parse(&body).map_err(Failure::Malformed);
        }
        let detail = ProviderDetail::from_body(&body);
        let reason = status_reason(status, &detail);
        if is_retryable_status(status, &detail) {
            Err(Failure::Transient {
                reason,
                retry_after: retry_after(&headers, SystemTime::now()),
            })
        } else {
            Err(Failure::Permanent(reason))
        }
    }

    fn transport_failure(&self, e: reqwest::Error, url: &Url) -> Failure {
        let e = e.without_url();
        let endpoint = display_url(url);
        if e.is_timeout() {
            Failure::Transient {
                reason: format!(
                    "no complete answer from {endpoint} within the {} s timeout",
                    self.timeout.as_secs_f64()
                ),
                retry_after: None,
            }
        } else if e.is_builder() {
            Failure::Permanent(format!(
                "could not build the request: {}",
                crate::error::chain(&e)
            ))
        } else if e.is_connect() {
            Failure::Transient {
                reason: format!(
                    "could not connect to {endpoint}: {}",
                    crate::error::chain(&e)
                ),
                retry_after: None,
            }
        } else {
            Failure::Transient {
                reason: format!(
                    "the connection to {endpoint} failed: {}",
                    crate::error::chain(&e)
                ),
                retry_after: None,
            }
        }
    }
}

/// A URL without any user name or password it may carry.
pub(crate) fn display_url(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_reads_seconds_milliseconds_and_http_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_470); // Wed, 21 Oct 2015 07:27:50 GMT
        assert_eq!(
            retry_after(&headers(&[("retry-after", "3")]), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after-ms", "250"), ("retry-after", "9")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
                now
            ),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Wed, 21 Oct 2015 07:00:00 GMT")]),
                now
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")]), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn backoff_doubles_is_capped_and_keeps_at_least_half() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        let longest = policy.backoff(1, 0.999_999);
        assert!(longest > Duration::from_millis(99) && longest <= Duration::from_millis(100));
        assert_eq!(policy.backoff(1, 0.0), Duration::from_millis(50));
        assert_eq!(policy.backoff(3, 0.0), Duration::from_millis(200));
        assert_eq!(policy.backoff(10, 0.0), Duration::from_millis(500));
        assert_eq!(policy.backoff(200, 0.0), Duration::from_millis(500));
        for _ in 0..100 {
            let unit = jitter_unit();
            assert!((0.0..1.0).contains(&unit), "{unit}");
        }
    }

    #[test]
    fn provider_messages_are_found_in_each_dialect() {
        let openai = ProviderDetail::from_body(
            br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(openai.message.as_deref(), Some("Rate limit reached"));
        assert_eq!(openai.kinds, ["requests", "rate_limit_exceeded"]);
        let anthropic = ProviderDetail::from_body(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert!(is_retryable_status(
            StatusCode::from_u16(529).unwrap(),
            &anthropic
        ));
        assert_eq!(
            status_reason(StatusCode::from_u16(529).unwrap(), &anthropic),
            "HTTP 529: Overloaded [overloaded_error]"
        );
        let ollama = ProviderDetail::from_body(br#"{"error":"model \"x\" not found"}"#);
        assert_eq!(ollama.message.as_deref(), Some("model \"x\" not found"));
        let vllm = ProviderDetail::from_body(br#"{"object":"error","message":"bad"}"#);
        assert_eq!(vllm.message.as_deref(), Some("bad"));
        let html = ProviderDetail::from_body(b"<html>\n  502 Bad Gateway\n</html>");
        assert_eq!(
            html.message.as_deref(),
            Some("<html> 502 Bad Gateway </html>")
        );
        let quota = ProviderDetail::from_body(
            br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota"}}"#,
        );
        assert!(!is_retryable_status(StatusCode::TOO_MANY_REQUESTS, &quota));
        for code in [400, 401, 403, 404, 422] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(!is_retryable_status(status, &ProviderDetail::default()));
        }
        for code in [408, 429, 500, 502, 503, 504, 529] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(is_retryable_status(status, &ProviderDetail::default()));
        }
    }

    #[test]
    fn reasons_are_truncated_on_a_character_boundary() {
        let long = "ошибка ".repeat(100);
        let cut = truncate(&long, 10);
        assert_eq!(cut, "ошибка оши…");
        let detail = ProviderDetail {
            message: Some(long),
            kinds: Vec::new(),
        };
        let reason = status_reason(StatusCode::BAD_REQUEST, &detail);
        assert!(reason.starts_with("HTTP 400 Bad Request: ошибка"));
        assert!(reason.chars().count() < 350);
    }

    #[test]
    fn keys_are_redacted_whole_and_half_masked() {
        let key = ApiKey::new("sk-proj-abcdefghijklmnop1234");
        let text = "Incorrect API key provided: sk-proj-********************1234. Key sk-proj-abcdefghijklmnop1234 and local-key-xyz; task-sk-x stays";
        let out = redact(text, Some(&key));
        assert_eq!(
            out,
            "Incorrect API key provided: [redacted]. Key [redacted] and local-key-xyz; task-sk-x stays"
        );
        let local = ApiKey::new("local-key-xyz");
        assert_eq!(redact("the local-key-xyz", Some(&local)), "the [redacted]");
        assert_eq!(format!("{key:?}"), "ApiKey(***)");
    }

    #[test]
    fn urls_lose_their_credentials_when_shown() {
        let url = Url::parse("https://user:secret@llm.internal:8443/v1/chat/completions").unwrap();
        assert_eq!(
            display_url(&url),
            "https://llm.internal:8443/v1/chat/completions"
        );
    }
}
