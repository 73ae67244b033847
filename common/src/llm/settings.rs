//! Which chat model to use, read from the environment once per cold start.
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `VOX_LLM_PROVIDER` | `offline`, `openai` (any OpenAI-compatible server), `anthropic` or `bedrock` (Amazon Bedrock's Converse API) | `offline` |
//! | `VOX_LLM_MODEL` | the provider's model name | required for openai and anthropic |
//! | `VOX_LLM_BASE_URL` | `https://api.openai.com/v1`-style base for openai (`http://localhost:11434/v1` for Ollama, `http://host:8000/v1` for vLLM); `https://api.anthropic.com` for anthropic | the provider's |
//! | `VOX_LLM_TEMPERATURE` | 0..=2 (0..=1 for anthropic and bedrock) | 0 |
//! | `VOX_LLM_MAX_TOKENS` | output tokens per answer | 4096 |
//! | `VOX_LLM_MAX_TOKENS_PARAM` | openai only: `max_tokens`, or `max_completion_tokens` for OpenAI's reasoning models, which refuse the older name (and take only temperature 1) | `max_tokens` |
//! | `VOX_LLM_CONTEXT_TOKENS` | the model's context window, in tokens | 32768 |
//! | `VOX_LLM_TIMEOUT_SECONDS` | one try, from connecting to the last byte | 120 |
//! | `VOX_LLM_MAX_RETRIES` | retries after the first try | 4 |
//! | `VOX_LLM_RETRY_TOTAL_SECONDS` | no retry wait may end later than this after the first try | 300 |
//! | `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` | the key; required with the provider's own base URL, optional with another (local servers) | |
//! | `VOX_BEDROCK_MODEL_ID` | bedrock: a model id (`anthropic.claude-...`), an inference profile id (`eu.anthropic.claude-...`) or either's ARN | required for bedrock |
//! | `VOX_BEDROCK_REGION` | bedrock: the region called | the SDK's (`AWS_REGION`) |
//! | `VOX_BEDROCK_ENDPOINT_URL` | bedrock: another endpoint (a test server); the SDK's own `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` works too | the region's |
//!
//! Bedrock takes no key: requests are signed with the AWS SDK's credentials (the function's
//! role). `VOX_LLM_MODEL`, `VOX_LLM_BASE_URL` and `VOX_LLM_MAX_TOKENS_PARAM` do not apply to it.
//!
//! The input budget given to callers ([`ChatSettings::max_input_chars`]) is the context
//! window less the output tokens, times [`CHARS_PER_TOKEN`].

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use super::http::{ApiKey, RetryPolicy};
use super::{AnthropicChat, ChatModel, OpenAiChat};
use crate::Result;
use crate::config::{self, ConfigError};

/// Reads one environment variable: `Ok(None)` when unset or empty. [`config::optional`] in
/// production; a map in tests (changing the process environment is `unsafe`).
pub type Lookup<'a> = &'a dyn Fn(&'static str) -> Result<Option<String>, ConfigError>;

/// Characters of Russian text per token, on the safe side. Measured tokenizers give about
/// 4 (OpenAI's o200k), 3 (Llama 3, Qwen 2.5) and 2.5-3 (Claude); the older 32k-vocabulary
/// models (Llama 2, Mistral 7B) come near 2. English gives 4 or more everywhere. Assuming 2
/// means an input sized by [`ChatSettings::max_input_chars`] fits every one of them.
pub const CHARS_PER_TOKEN: usize = 2;

pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

/// How an OpenAI-compatible server wants the output limit named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensParam {
    /// `max_tokens`: OpenAI's older models, vLLM, Ollama, llama.cpp server.
    MaxTokens,
    /// `max_completion_tokens`: OpenAI's reasoning models (o1, o3, gpt-5...).
    MaxCompletionTokens,
}

impl MaxTokensParam {
    pub fn field(self) -> &'static str {
        match self {
            MaxTokensParam::MaxTokens => "max_tokens",
            MaxTokensParam::MaxCompletionTokens => "max_completion_tokens",
        }
    }
}

/// One hosted chat model's settings. `Debug` shows no key.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatSettings {
    pub model: String,
    /// Without a trailing slash.
    pub base_url: String,
    pub api_key: Option<ApiKey>,
    pub temperature: f32,
    pub max_tokens: u32,
    pub context_tokens: u32,
    /// Only read by [`OpenAiChat`].
    pub max_tokens_param: MaxTokensParam,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl ChatSettings {
    /// The defaults of the table above, for `model` at `base_url`, with no key.
    pub fn new(model: impl Into<String>, base_url: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key: None,
            temperature: 0.0,
            max_tokens: 4096,
            context_tokens: 32_768,
            max_tokens_param: MaxTokensParam::MaxTokens,
            timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
        }
    }

    /// The context window left after the answer's tokens, in characters of Russian.
    pub fn max_input_chars(&self) -> usize {
        input_chars(self.context_tokens, self.max_tokens)
    }
}

/// The context window left after the answer's tokens, in characters of Russian.
fn input_chars(context_tokens: u32, max_tokens: u32) -> usize {
    let tokens = context_tokens.saturating_sub(max_tokens);
    usize::try_from(tokens).unwrap_or(usize::MAX) * CHARS_PER_TOKEN
}

/// Amazon Bedrock's settings (`VOX_LLM_PROVIDER=bedrock`). No key: the AWS SDK signs the
/// requests with its usual credentials (the function's role).
#[derive(Debug, Clone, PartialEq)]
pub struct BedrockSettings {
    /// `VOX_BEDROCK_MODEL_ID`: a model id, an inference profile id or either's ARN.
    pub model_id: String,
    /// `VOX_BEDROCK_REGION`; `None`: the SDK's region.
    pub region: Option<String>,
    /// `VOX_BEDROCK_ENDPOINT_URL`, without a trailing slash; `None`: the SDK's endpoint
    /// (the region's, or `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` / `AWS_ENDPOINT_URL` when set).
    pub endpoint_url: Option<String>,
    pub temperature: f32,
    pub max_tokens: u32,
    pub context_tokens: u32,
    /// One try, from connecting to the last byte (the SDK's attempt timeout).
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl BedrockSettings {
    /// The defaults of the table above, for `model_id`.
    pub fn new(model_id: impl Into<String>) -> Self {
        let defaults = ChatSettings::new("", "");
        Self {
            model_id: model_id.into(),
            region: None,
            endpoint_url: None,
            temperature: defaults.temperature,
            max_tokens: defaults.max_tokens,
            context_tokens: defaults.context_tokens,
            timeout: defaults.timeout,
            retry: defaults.retry,
        }
    }

    /// The context window left after the answer's tokens, in characters of Russian.
    pub fn max_input_chars(&self) -> usize {
        input_chars(self.context_tokens, self.max_tokens)
    }
}

/// The configured chat provider.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatConfig {
    /// No hosted model: the analysis uses its deterministic offline engine.
    Offline,
    OpenAi(ChatSettings),
    Anthropic(ChatSettings),
    Bedrock(BedrockSettings),
}

/// What every hosted provider reads the same way.
struct Common {
    temperature: f32,
    max_tokens: u32,
    context_tokens: u32,
    timeout: Duration,
    retry: RetryPolicy,
}

impl Common {
    fn from_lookup(
        get: Lookup<'_>,
        provider: &str,
        max_temperature: f32,
    ) -> Result<Self, ConfigError> {
        let defaults = ChatSettings::new("", "");
        let temperature = parse_or(get, "VOX_LLM_TEMPERATURE", defaults.temperature)?;
        if !(0.0..=max_temperature).contains(&temperature) {
            return Err(ConfigError::Invalid {
                var: "VOX_LLM_TEMPERATURE",
                reason: format!("{temperature} is outside 0..={max_temperature} for {provider}"),
            });
        }
        let max_tokens = at_least(get, "VOX_LLM_MAX_TOKENS", defaults.max_tokens, 1)?;
        let context_tokens = at_least(get, "VOX_LLM_CONTEXT_TOKENS", defaults.context_tokens, 1)?;
        if context_tokens <= max_tokens {
            return Err(ConfigError::Invalid {
                var: "VOX_LLM_CONTEXT_TOKENS",
                reason: format!(
                    "{context_tokens} leaves no room for input next to VOX_LLM_MAX_TOKENS = {max_tokens}"
                ),
            });
        }
        Ok(Self {
            temperature,
            max_tokens,
            context_tokens,
            timeout: seconds(get, "VOX_LLM_TIMEOUT_SECONDS", 120)?,
            retry: retry_policy(
                get,
                "VOX_LLM_MAX_RETRIES",
                4,
                "VOX_LLM_RETRY_TOTAL_SECONDS",
                300,
            )?,
        })
    }
}

impl ChatConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&config::optional)
    }

    pub fn from_lookup(get: Lookup<'_>) -> Result<Self, ConfigError> {
        let provider = get("VOX_LLM_PROVIDER")?.unwrap_or_else(|| "offline".to_owned());
        let (default_base, key_var, max_temperature) = match provider.trim() {
            "offline" => return Ok(ChatConfig::Offline),
            "openai" => (OPENAI_BASE_URL, "OPENAI_API_KEY", 2.0),
            "anthropic" => (ANTHROPIC_BASE_URL, "ANTHROPIC_API_KEY", 1.0),
            "bedrock" => return Self::bedrock(get).map(ChatConfig::Bedrock),
            other => {
                return Err(ConfigError::Invalid {
                    var: "VOX_LLM_PROVIDER",
                    reason: format!("{other:?} is not offline, openai, anthropic or bedrock"),
                });
            }
        };
        let model =
            get("VOX_LLM_MODEL")?
                .map(|m| m.trim().to_owned())
                .ok_or(ConfigError::Missing {
                    var: "VOX_LLM_MODEL",
                })?;
        let base_url = base_url(get, "VOX_LLM_BASE_URL", default_base)?;
        let mut settings = ChatSettings::new(model, base_url);
        settings.api_key = api_key(get, key_var, settings.base_url == default_base)?;
        let common = Common::from_lookup(get, provider.trim(), max_temperature)?;
        settings.temperature = common.temperature;
        settings.max_tokens = common.max_tokens;
        settings.context_tokens = common.context_tokens;
        settings.timeout = common.timeout;
        settings.retry = common.retry;
        settings.max_tokens_param = match get("VOX_LLM_MAX_TOKENS_PARAM")?.as_deref().map(str::trim)
        {
            None | Some("max_tokens") => MaxTokensParam::MaxTokens,
            Some("max_completion_tokens") => MaxTokensParam::MaxCompletionTokens,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "VOX_LLM_MAX_TOKENS_PARAM",
                    reason: format!("{other:?} is not max_tokens or max_completion_tokens"),
                });
            }
        };
        Ok(match provider.trim() {
            "anthropic" => ChatConfig::Anthropic(settings),
            _ => ChatConfig::OpenAi(settings),
        })
    }

    fn bedrock(get: Lookup<'_>) -> Result<BedrockSettings, ConfigError> {
        let model_id = get("VOX_BEDROCK_MODEL_ID")?
            .map(|m| m.trim().to_owned())
            .ok_or(ConfigError::Missing {
                var: "VOX_BEDROCK_MODEL_ID",
            })?;
        let mut settings = BedrockSettings::new(model_id);
        settings.region = get("VOX_BEDROCK_REGION")?.map(|r| r.trim().to_owned());
        if let Some(region) = &settings.region
            && !region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(ConfigError::Invalid {
                var: "VOX_BEDROCK_REGION",
                reason: format!("{region:?} is not a region name like eu-central-1"),
            });
        }
        settings.endpoint_url = match get("VOX_BEDROCK_ENDPOINT_URL")? {
            Some(_) => Some(base_url(get, "VOX_BEDROCK_ENDPOINT_URL", "")?),
            None => None,
        };
        let common = Common::from_lookup(get, "bedrock", 1.0)?;
        settings.temperature = common.temperature;
        settings.max_tokens = common.max_tokens;
        settings.context_tokens = common.context_tokens;
        settings.timeout = common.timeout;
        settings.retry = common.retry;
        Ok(settings)
    }

    /// The client, or `None` for offline. Bedrock's loads the AWS SDK's configuration
    /// (region, credentials) as the S3 and SQS clients do; it is an error in a build without
    /// the `bedrock` feature.
    pub async fn build(self) -> Result<Option<Arc<dyn ChatModel>>> {
        Ok(match self {
            ChatConfig::Offline => None,
            ChatConfig::OpenAi(settings) => Some(Arc::new(OpenAiChat::new(settings)?)),
            ChatConfig::Anthropic(settings) => Some(Arc::new(AnthropicChat::new(settings)?)),
            #[cfg(feature = "bedrock")]
            ChatConfig::Bedrock(settings) => {
                let sdk = crate::aws::load().await;
                Some(Arc::new(super::BedrockChat::new(settings, &sdk)?))
            }
            #[cfg(not(feature = "bedrock"))]
            ChatConfig::Bedrock(_) => {
                return Err(ConfigError::Invalid {
                    var: "VOX_LLM_PROVIDER",
                    reason: "bedrock is not built into this program (vox-common's `bedrock` \
                             feature)"
                        .into(),
                }
                .into());
            }
        })
    }
}

/// The chat model the environment configures, or `None` when it is `offline` (the default).
/// Called once per cold start.
pub async fn chat_model_from_env() -> Result<Option<Arc<dyn ChatModel>>> {
    ChatConfig::from_env()?.build().await
}

pub(crate) fn parse_or<T>(get: Lookup<'_>, var: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match get(var)? {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                var,
                reason: format!("{raw:?}: {e}"),
            }),
    }
}

pub(crate) fn at_least(
    get: Lookup<'_>,
    var: &'static str,
    default: u32,
    min: u32,
) -> Result<u32, ConfigError> {
    let value = parse_or(get, var, default)?;
    if value < min {
        return Err(ConfigError::Invalid {
            var,
            reason: format!("{value} is below the minimum of {min}"),
        });
    }
    Ok(value)
}

pub(crate) fn seconds(
    get: Lookup<'_>,
    var: &'static str,
    default: u32,
) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(u64::from(at_least(
        get, var, default, 1,
    )?)))
}

/// `max_retries` retries after the first try, waits ending within `total` seconds.
pub(crate) fn retry_policy(
    get: Lookup<'_>,
    retries_var: &'static str,
    default_retries: u32,
    total_var: &'static str,
    default_total: u32,
) -> Result<RetryPolicy, ConfigError> {
    let retries: u32 = parse_or(get, retries_var, default_retries)?;
    Ok(RetryPolicy {
        max_attempts: retries.saturating_add(1),
        max_elapsed: seconds(get, total_var, default_total)?,
        ..RetryPolicy::default()
    })
}

/// An http(s) URL, without a trailing slash.
pub(crate) fn base_url(
    get: Lookup<'_>,
    var: &'static str,
    default: &str,
) -> Result<String, ConfigError> {
    let Some(raw) = get(var)? else {
        return Ok(default.to_owned());
    };
    let trimmed = raw.trim().trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|e| ConfigError::Invalid {
        var,
        reason: format!("{trimmed:?} is not a URL: {e}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::Invalid {
            var,
            reason: format!("{trimmed:?} is not an http or https URL"),
        });
    }
    Ok(trimmed.to_owned())
}

/// The key in `var`; an error naming it when `required` and unset.
pub(crate) fn api_key(
    get: Lookup<'_>,
    var: &'static str,
    required: bool,
) -> Result<Option<ApiKey>, ConfigError> {
    match get(var)? {
        Some(key) => Ok(Some(ApiKey::new(key))),
        None if required => Err(ConfigError::Missing { var }),
        None => Ok(None),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A lookup over fixed variables, as the process environment would answer.
    pub(crate) fn vars(
        pairs: &[(&'static str, &str)],
    ) -> impl Fn(&'static str) -> Result<Option<String>, ConfigError> + use<> {
        let map: HashMap<&'static str, String> =
            pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        move |var| Ok(map.get(var).filter(|v| !v.trim().is_empty()).cloned())
    }

    #[tokio::test]
    async fn offline_is_the_default() {
        assert_eq!(
            ChatConfig::from_lookup(&vars(&[])).unwrap(),
            ChatConfig::Offline
        );
        assert!(
            ChatConfig::from_lookup(&vars(&[("VOX_LLM_PROVIDER", "offline")]))
                .unwrap()
                .build()
                .await
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn openai_reads_every_variable() {
        let config = ChatConfig::from_lookup(&vars(&[
            ("VOX_LLM_PROVIDER", "openai"),
            ("VOX_LLM_MODEL", "gpt-4o-mini"),
            ("VOX_LLM_TEMPERATURE", "0.2"),
            ("VOX_LLM_MAX_TOKENS", "1000"),
            ("VOX_LLM_MAX_TOKENS_PARAM", "max_completion_tokens"),
            ("VOX_LLM_CONTEXT_TOKENS", "9000"),
            ("VOX_LLM_TIMEOUT_SECONDS", "30"),
            ("VOX_LLM_MAX_RETRIES", "2"),
            ("VOX_LLM_RETRY_TOTAL_SECONDS", "60"),
            ("OPENAI_API_KEY", "sk-test-0123456789"),
        ]))
        .unwrap();
        let ChatConfig::OpenAi(settings) = config else {
            panic!("not openai: {config:?}");
        };
        assert_eq!(settings.model, "gpt-4o-mini");
        assert_eq!(settings.base_url, OPENAI_BASE_URL);
        assert_eq!(settings.temperature, 0.2);
        assert_eq!(settings.max_tokens, 1000);
        assert_eq!(
            settings.max_tokens_param,
            MaxTokensParam::MaxCompletionTokens
        );
        assert_eq!(settings.max_input_chars(), 8000 * CHARS_PER_TOKEN);
        assert_eq!(settings.timeout, Duration::from_secs(30));
        assert_eq!(settings.retry.max_attempts, 3);
        assert_eq!(settings.retry.max_elapsed, Duration::from_secs(60));
        let shown = format!("{settings:?}");
        assert!(!shown.contains("sk-test"), "{shown}");
        assert!(shown.contains("ApiKey(***)"), "{shown}");
    }

    #[test]
    fn a_local_server_needs_no_key_but_the_official_endpoint_does() {
        let local = ChatConfig::from_lookup(&vars(&[
            ("VOX_LLM_PROVIDER", "openai"),
            ("VOX_LLM_MODEL", "qwen2.5:7b"),
            ("VOX_LLM_BASE_URL", "http://localhost:11434/v1/"),
        ]))
        .unwrap();
        let ChatConfig::OpenAi(settings) = local else {
            panic!("not openai");
        };
        assert_eq!(settings.base_url, "http://localhost:11434/v1");
        assert_eq!(settings.api_key, None);

        let err = ChatConfig::from_lookup(&vars(&[
            ("VOX_LLM_PROVIDER", "anthropic"),
            ("VOX_LLM_MODEL", "claude-sonnet-4-5"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable ANTHROPIC_API_KEY is required but not set"
        );
    }

    #[test]
    fn bedrock_reads_its_variables_and_needs_no_key() {
        let config = ChatConfig::from_lookup(&vars(&[
            ("VOX_LLM_PROVIDER", "bedrock"),
            (
                "VOX_BEDROCK_MODEL_ID",
                " eu.anthropic.claude-sonnet-4-5-20250929-v1:0 ",
            ),
            ("VOX_BEDROCK_REGION", "eu-west-1"),
            ("VOX_BEDROCK_ENDPOINT_URL", "http://127.0.0.1:9000/"),
            ("VOX_LLM_TEMPERATURE", "0.3"),
            ("VOX_LLM_MAX_TOKENS", "2000"),
            ("VOX_LLM_CONTEXT_TOKENS", "200000"),
            ("VOX_LLM_TIMEOUT_SECONDS", "45"),
            ("VOX_LLM_MAX_RETRIES", "6"),
            ("VOX_LLM_RETRY_TOTAL_SECONDS", "100"),
        ]))
        .unwrap();
        let ChatConfig::Bedrock(settings) = config else {
            panic!("not bedrock: {config:?}");
        };
        assert_eq!(
            settings.model_id,
            "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
        );
        assert_eq!(settings.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            settings.endpoint_url.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(settings.temperature, 0.3);
        assert_eq!(settings.max_tokens, 2000);
        assert_eq!(settings.max_input_chars(), 198_000 * CHARS_PER_TOKEN);
        assert_eq!(settings.timeout, Duration::from_secs(45));
        assert_eq!(settings.retry.max_attempts, 7);
        assert_eq!(settings.retry.max_elapsed, Duration::from_secs(100));

        let defaults = ChatConfig::from_lookup(&vars(&[
            ("VOX_LLM_PROVIDER", "bedrock"),
            ("VOX_BEDROCK_MODEL_ID", "amazon.nova-pro-v1:0"),
        ]))
        .unwrap();
        assert_eq!(
            defaults,
            ChatConfig::Bedrock(BedrockSettings::new("amazon.nova-pro-v1:0"))
        );
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&'static str, &str)], &str)] = &[
            (&[("VOX_LLM_PROVIDER", "gemini")], "VOX_LLM_PROVIDER"),
            (
                &[("VOX_LLM_PROVIDER", "bedrock"), ("VOX_LLM_MODEL", "m")],
                "VOX_BEDROCK_MODEL_ID",
            ),
            (
                &[
                    ("VOX_LLM_PROVIDER", "bedrock"),
                    ("VOX_BEDROCK_MODEL_ID", "m"),
                    ("VOX_LLM_TEMPERATURE", "1.5"),
                ],
                "VOX_LLM_TEMPERATURE",
            ),
            (
                &[
                    ("VOX_LLM_PROVIDER", "bedrock"),
                    ("VOX_BEDROCK_MODEL_ID", "m"),
                    ("VOX_BEDROCK_REGION", "Frankfurt"),
                ],
                "VOX_BEDROCK_REGION",
            ),
            (
                &[
                    ("VOX_LLM_PROVIDER", "bedrock"),
                    ("VOX_BEDROCK_MODEL_ID", "m"),
                    ("VOX_BEDROCK_ENDPOINT_URL", "bedrock.internal"),
                ],
                "VOX_BEDROCK_ENDPOINT_URL",
            ),
            (
                &[
                    ("VOX_LLM_PROVIDER", "bedrock"),
                    ("VOX_BEDROCK_MODEL_ID", "m"),
                    ("VOX_LLM_CONTEXT_TOKENS", "100"),
                ],
                "VOX_LLM_CONTEXT_TOKENS",
            ),
            (&[("VOX_LLM_PROVIDER", "openai")], "VOX_LLM_MODEL"),
            (
                &[
                    ("VOX_LLM_PROVIDER", "openai"),
                    ("VOX_LLM_MODEL", "m"),
                    ("VOX_LLM_BASE_URL", "localhost:8000"),
                    ("OPENAI_API_KEY", "k"),
                ],
                "VOX_LLM_BASE_URL",
            ),
            (
                &[
                    ("VOX_LLM_PROVIDER", "anthropic"),
                    ("VOX_LLM_MODEL", "m"),
                    ("ANTHROPIC_API_KEY", "k"),
                    ("VOX_LLM_TEMPERATURE", "1.5"),
                ],
                "VOX_LLM_TEMPERATURE",
            ),
            (
                &[
                    ("VOX_LLM_PROVIDER", "openai"),
                    ("VOX_LLM_MODEL", "m"),
                    ("OPENAI_API_KEY", "k"),
                    ("VOX_LLM_MAX_TOKENS", "many"),
                ],
                "VOX_LLM_MAX_TOKENS",
            ),
            (
                &[
                    ("VOX_LLM_PROVIDER", "openai"),
                    ("VOX_LLM_MODEL", "m"),
                    ("OPENAI_API_KEY", "k"),
                    ("VOX_LLM_CONTEXT_TOKENS", "4096"),
                ],
                "VOX_LLM_CONTEXT_TOKENS",
            ),
            (
                &[
                    ("VOX_LLM_PROVIDER", "openai"),
                    ("VOX_LLM_MODEL", "m"),
                    ("OPENAI_API_KEY", "k"),
                    ("VOX_LLM_TIMEOUT_SECONDS", "0"),
                ],
                "VOX_LLM_TIMEOUT_SECONDS",
            ),
        ];
        for (pairs, var) in cases {
            let err = ChatConfig::from_lookup(&vars(pairs)).unwrap_err();
            assert!(err.to_string().contains(var), "{err} should name {var}");
        }
        let missing = ChatConfig::from_lookup(&vars(&[("VOX_LLM_PROVIDER", "bedrock")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            missing,
            "environment variable VOX_BEDROCK_MODEL_ID is required but not set"
        );
    }

    #[cfg(not(feature = "bedrock"))]
    #[tokio::test]
    async fn bedrock_without_the_feature_says_so() {
        let err = ChatConfig::Bedrock(BedrockSettings::new("m"))
            .build()
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("VOX_LLM_PROVIDER") && err.contains("`bedrock`"),
            "{err}"
        );
    }
}
