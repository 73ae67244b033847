//! Anthropic Messages: `POST {base}/v1/messages` with `x-api-key` and
//! `anthropic-version: 2023-06-01`; the system prompt is a top-level field, `max_tokens` is
//! required, and the answer's text blocks are concatenated.

use futures::future::BoxFuture;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::HttpCore;
use super::openai::endpoint;
use super::settings::ChatSettings;
use super::{ChatModel, ChatRequest, ChatResponse, FinishReason, Role};
use crate::Result;

/// The API version this client speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A Claude model through the Messages API.
#[derive(Debug)]
pub struct AnthropicChat {
    core: HttpCore,
    url: Url,
    key: Option<HeaderValue>,
    settings: ChatSettings,
}

impl AnthropicChat {
    pub fn new(settings: ChatSettings) -> Result<Self> {
        let core = HttpCore::new(
            "anthropic",
            settings.timeout,
            settings.retry.clone(),
            settings.api_key.clone(),
        )?;
        let url = endpoint(&settings.base_url, "v1/messages")?;
        let key = core.secret_header("")?;
        Ok(Self {
            core,
            url,
            key,
            settings,
        })
    }

    /// The request body: `system` at the top level, never as a message.
    pub fn body(&self, request: &ChatRequest) -> Value {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|message| {
                let role = match message.role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                json!({ "role": role, "content": message.content })
            })
            .collect();
        let mut body = json!({
            "model": self.settings.model,
            "max_tokens": request.max_tokens.unwrap_or(self.settings.max_tokens),
            "temperature": request.temperature.unwrap_or(self.settings.temperature),
            "messages": messages,
        });
        if let Some(system) = &request.system {
            body["system"] = json!(system);
        }
        body
    }
}

#[derive(Deserialize)]
struct Answer {
    model: Option<String>,
    content: Vec<Block>,
    stop_reason: Option<String>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
}

fn parse(body: &[u8], requested_model: &str) -> Result<ChatResponse, String> {
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| format!("not a Messages answer: {e}"))?;
    let texts: Vec<String> = answer
        .content
        .into_iter()
        .filter(|block| block.kind == "text")
        .filter_map(|block| block.text)
        .collect();
    if texts.is_empty() {
        return Err("the answer has no text content block".into());
    }
    let finish = match answer.stop_reason.as_deref() {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens") => FinishReason::Length,
        _ => FinishReason::Other,
    };
    Ok(ChatResponse {
        text: texts.concat(),
        model: answer.model.unwrap_or_else(|| requested_model.to_owned()),
        finish,
        input_tokens: answer.usage.as_ref().and_then(|u| u.input_tokens),
        output_tokens: answer.usage.as_ref().and_then(|u| u.output_tokens),
    })
}

impl ChatModel for AnthropicChat {
    fn model_id(&self) -> String {
        format!("anthropic:{}", self.settings.model)
    }

    fn max_input_chars(&self) -> usize {
        self.settings.max_input_chars()
    }

    fn chat<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<ChatResponse>> {
        Box::pin(async move {
            let body = serde_json::to_vec(&self.body(request)).map_err(|e| {
                self.core
                    .error(format!("could not encode the request: {e}"), false)
            })?;
            let started = std::time::Instant::now();
            let response = self
                .core
                .post(
                    &self.url,
                    |builder| {
                        let builder = builder
                            .header(CONTENT_TYPE, "application/json")
                            .header("anthropic-version", ANTHROPIC_VERSION)
                            .body(body.clone());
                        match &self.key {
                            Some(key) => builder.header("x-api-key", key.clone()),
                            None => builder,
                        }
                    },
                    |bytes| parse(bytes, &self.settings.model),
                )
                .await?;
            super::log_answer(self.core.provider(), &response, started);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Message;

    #[test]
    fn the_body_keeps_the_system_prompt_out_of_the_messages() {
        let chat = AnthropicChat::new(ChatSettings::new(
            "claude-sonnet-4-5",
            "https://api.anthropic.com",
        ))
        .unwrap();
        let body = chat.body(&ChatRequest {
            system: Some("Ты аудитор.".into()),
            messages: vec![Message::user("Привет")],
            max_tokens: Some(100),
            temperature: None,
        });
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 100,
                "temperature": 0.0,
                "system": "Ты аудитор.",
                "messages": [{"role": "user", "content": "Привет"}],
            })
        );
        assert_eq!(chat.url.as_str(), "https://api.anthropic.com/v1/messages");
    }

    #[test]
    fn text_blocks_are_concatenated_and_max_tokens_is_length() {
        let answer = parse(
            r#"{"model":"claude-x","content":[{"type":"text","text":"Раз, "},{"type":"tool_use","id":"t"},{"type":"text","text":"два"}],"stop_reason":"max_tokens","usage":{"input_tokens":7,"output_tokens":2}}"#.as_bytes(),
            "m",
        )
        .unwrap();
        assert_eq!(answer.text, "Раз, два");
        assert_eq!(answer.finish, FinishReason::Length);
        assert_eq!(
            (answer.input_tokens, answer.output_tokens),
            (Some(7), Some(2))
        );
        assert_eq!(
            parse(br#"{"content":[],"stop_reason":"end_turn"}"#, "m").unwrap_err(),
            "the answer has no text content block"
        );
    }
}
