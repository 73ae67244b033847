//! OpenAI-compatible chat: `POST {base}/chat/completions`, as OpenAI, vLLM, Ollama and the
//! llama.cpp server speak it.

use futures::future::BoxFuture;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::HttpCore;
use super::settings::ChatSettings;
use super::{ChatModel, ChatRequest, ChatResponse, FinishReason, Role};
use crate::{Error, Result};

/// A chat model behind an OpenAI-compatible endpoint; the key (if any) goes in
/// `Authorization: Bearer`.
#[derive(Debug)]
pub struct OpenAiChat {
    core: HttpCore,
    url: Url,
    auth: Option<HeaderValue>,
    settings: ChatSettings,
}

impl OpenAiChat {
    pub fn new(settings: ChatSettings) -> Result<Self> {
        let core = HttpCore::new(
            "openai",
            settings.timeout,
            settings.retry.clone(),
            settings.api_key.clone(),
        )?;
        let url = endpoint(&settings.base_url, "chat/completions")?;
        let auth = core.secret_header("Bearer ")?;
        Ok(Self {
            core,
            url,
            auth,
            settings,
        })
    }

    /// The request body: the system prompt as the first message.
    pub fn body(&self, request: &ChatRequest) -> Value {
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if let Some(system) = &request.system {
            messages.push(json!({ "role": "system", "content": system }));
        }
        for message in &request.messages {
            let role = match message.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            messages.push(json!({ "role": role, "content": message.content }));
        }
        let mut body = json!({
            "model": self.settings.model,
            "messages": messages,
            "temperature": request.temperature.unwrap_or(self.settings.temperature),
        });
        body[self.settings.max_tokens_param.field()] =
            json!(request.max_tokens.unwrap_or(self.settings.max_tokens));
        body
    }
}

/// `{base}/{path}` as a URL; the base was checked when configured.
pub(crate) fn endpoint(base: &str, path: &str) -> Result<Url> {
    let joined = format!("{}/{path}", base.trim_end_matches('/'));
    Url::parse(&joined).map_err(|e| Error::InvalidInput {
        field: "base URL",
        reason: format!("{joined:?} is not a URL: {e}"),
    })
}

#[derive(Deserialize)]
struct Completion {
    model: Option<String>,
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<AnswerMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct AnswerMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
}

fn parse(body: &[u8], requested_model: &str) -> Result<ChatResponse, String> {
    let completion: Completion =
        serde_json::from_slice(body).map_err(|e| format!("not a chat completion: {e}"))?;
    let choice = completion
        .choices
        .into_iter()
        .next()
        .ok_or("the response has no choices[0]")?;
    let text = choice
        .message
        .and_then(|m| m.content)
        .ok_or("choices[0].message.content is missing")?;
    let finish = match choice.finish_reason.as_deref() {
        Some("stop") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        _ => FinishReason::Other,
    };
    let usage = completion.usage;
    Ok(ChatResponse {
        text,
        model: completion
            .model
            .unwrap_or_else(|| requested_model.to_owned()),
        finish,
        input_tokens: usage.as_ref().and_then(|u| u.prompt_tokens),
        output_tokens: usage.as_ref().and_then(|u| u.completion_tokens),
    })
}

impl ChatModel for OpenAiChat {
    fn model_id(&self) -> String {
        format!("openai:{}", self.settings.model)
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
                            .body(body.clone());
                        match &self.auth {
                            Some(auth) => builder.header(AUTHORIZATION, auth.clone()),
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
    fn the_body_puts_the_system_prompt_first_and_applies_defaults() {
        let mut settings = ChatSettings::new("gpt-4o-mini", "https://api.openai.com/v1/");
        settings.max_tokens = 512;
        let chat = OpenAiChat::new(settings).unwrap();
        let body = chat.body(&ChatRequest {
            system: Some("Ты аудитор.".into()),
            messages: vec![Message::user("Привет"), Message::assistant("Здравствуйте")],
            max_tokens: None,
            temperature: Some(0.5),
        });
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "Ты аудитор."},
                    {"role": "user", "content": "Привет"},
                    {"role": "assistant", "content": "Здравствуйте"},
                ],
                "temperature": 0.5,
                "max_tokens": 512,
            })
        );
        assert_eq!(
            chat.url.as_str(),
            "https://api.openai.com/v1/chat/completions"
        );
    }

    #[test]
    fn answers_map_finish_reasons_and_usage() {
        let answer = parse(
            r#"{"model":"gpt-4o-mini-2024","choices":[{"message":{"role":"assistant","content":"Ок"},"finish_reason":"length"}],"usage":{"prompt_tokens":12,"completion_tokens":3}}"#.as_bytes(),
            "gpt-4o-mini",
        )
        .unwrap();
        assert_eq!(answer.text, "Ок");
        assert_eq!(answer.model, "gpt-4o-mini-2024");
        assert_eq!(answer.finish, FinishReason::Length);
        assert_eq!(
            (answer.input_tokens, answer.output_tokens),
            (Some(12), Some(3))
        );

        let err = parse(br#"{"choices":[{"message":{"content":null}}]}"#, "m").unwrap_err();
        assert_eq!(err, "choices[0].message.content is missing");
        let err = parse(br#"{"choices":[]}"#, "m").unwrap_err();
        assert_eq!(err, "the response has no choices[0]");
        assert!(
            parse(b"<html>", "m")
                .unwrap_err()
                .starts_with("not a chat completion")
        );
    }
}
