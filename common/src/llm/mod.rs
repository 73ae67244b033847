//! Hosted model clients behind small traits: chat ([`OpenAiChat`] for OpenAI-compatible
//! servers, [`AnthropicChat`] for Anthropic Messages, `BedrockChat` for Amazon Bedrock's
//! Converse API with the `bedrock` feature), chosen by [`chat_model_from_env`] (see
//! [`settings`] for the variables). The hosted speech engine (`crate::speech_api`) shares
//! their HTTP core, and Bedrock (on the AWS SDK) its retry loop.
//!
//! Keys come only from the environment and are never logged. Retries with exponential
//! backoff and jitter on 429, 5xx, timeouts and dropped connections (honouring
//! `retry-after`); 400, 401, 403, 404 and 422 are permanent and the error quotes what the
//! provider said. The rules are in [`http`].

pub mod anthropic;
#[cfg(feature = "bedrock")]
pub mod bedrock;
pub mod http;
pub mod openai;
pub mod settings;

use futures::future::BoxFuture;

pub use anthropic::AnthropicChat;
#[cfg(feature = "bedrock")]
pub use bedrock::BedrockChat;
pub use http::{ApiKey, RetryPolicy};
pub use openai::OpenAiChat;
pub use settings::{
    BedrockSettings, ChatConfig, ChatSettings, MaxTokensParam, chat_model_from_env,
};

use crate::Result;

/// Who says a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// A chat request; what is `None` takes the client's configured default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// It finished its answer.
    Stop,
    /// It hit the token limit: the text is cut off.
    Length,
    Other,
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    pub text: String,
    /// The model that answered, as the provider names it.
    pub model: String,
    pub finish: FinishReason,
    pub input_tokens: Option<u32>,
    pub output_tokens: Option<u32>,
}

/// A chat model. Errors are [`crate::Error::Provider`], retryable or permanent; the client
/// has already retried what was worth retrying.
pub trait ChatModel: Send + Sync {
    /// Stored with every report it writes (e.g. `openai:gpt-4o-mini`).
    fn model_id(&self) -> String;

    /// The most characters of input one request should carry (the token budget, converted
    /// with a conservative characters-per-token ratio); longer inputs are split by the caller.
    fn max_input_chars(&self) -> usize;

    fn chat<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<ChatResponse>>;
}

/// The one log line of every chat client's answer: provider, model, why it stopped, token
/// usage and how long it took (retries included).
pub(crate) fn log_answer(provider: &str, response: &ChatResponse, started: std::time::Instant) {
    tracing::info!(
        provider,
        model = %response.model,
        finish = ?response.finish,
        input_tokens = response.input_tokens,
        output_tokens = response.output_tokens,
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "chat answered"
    );
}
