//! Amazon Bedrock through the Converse API (`POST /model/{modelId}/converse`), with the AWS
//! SDK: requests are signed with the SDK's credentials (the function's role), so there is no
//! key. The system prompt goes in Converse's `system`, each message as one text content
//! block, and `inferenceConfig` carries `maxTokens` and `temperature`; the answer's text
//! blocks are concatenated.
//!
//! Retries are the shared loop's ([`super::http`]): the SDK's own retries are off, so no try
//! is doubled. Throttling, service unavailable, model not ready, internal errors, model
//! timeouts, any 408/429/5xx and timeouts or dropped connections are retried with its
//! backoff; validation errors, access denied, an unknown model and every other 4xx are
//! permanent and the reason quotes what Bedrock said. A 2xx whose body is not a Converse
//! answer is malformed (retried once, then permanent).

use aws_config::SdkConfig;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::config::{Region, StalledStreamProtectionConfig};
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::{ConverseError, ConverseOutput};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message as BedrockMessage, StopReason,
    SystemContentBlock,
};
use futures::future::BoxFuture;
use reqwest::StatusCode;

use super::http::{Failure, ProviderDetail, Retrier, status_reason, truncate};
use super::settings::BedrockSettings;
use super::{ChatModel, ChatRequest, ChatResponse, FinishReason, Role};
use crate::Result;

/// Names the provider in errors and logs.
const PROVIDER: &str = "bedrock";

/// How much of an SDK error chain a reason quotes.
const MAX_CHAIN_CHARS: usize = 500;

/// Error codes worth another try whatever their status.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "ServiceUnavailableException",
    "ModelNotReadyException",
    "InternalServerException",
    "ModelTimeoutException",
];

/// A model (or inference profile) on Amazon Bedrock, through Converse.
#[derive(Debug)]
pub struct BedrockChat {
    client: Client,
    settings: BedrockSettings,
}

impl BedrockChat {
    /// The client on `sdk`'s region, credentials and endpoint, as the S3 and SQS clients are
    /// built; `settings` may name another region or endpoint. Built once per cold start.
    pub fn new(settings: BedrockSettings, sdk: &SdkConfig) -> Result<Self> {
        let mut config = aws_sdk_bedrockruntime::config::Builder::from(sdk)
            // The shared loop retries; the SDK's own would multiply its attempts.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(settings.timeout.min(std::time::Duration::from_secs(10)))
                    .operation_attempt_timeout(settings.timeout)
                    .build(),
            )
            // A model may think for a while before its first byte: the attempt timeout
            // bounds the wait instead.
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
        if let Some(region) = &settings.region {
            config = config.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.endpoint_url {
            config = config.endpoint_url(endpoint.clone());
        }
        let config = config.build();
        if config.region().is_none() {
            return Err(crate::Error::Provider {
                provider: PROVIDER.to_owned(),
                reason: "no AWS region: set AWS_REGION or VOX_BEDROCK_REGION".into(),
                retryable: false,
            });
        }
        Ok(Self {
            client: Client::from_conf(config),
            settings,
        })
    }

    fn retrier(&self) -> Retrier<'_> {
        Retrier {
            provider: PROVIDER,
            policy: &self.settings.retry,
            secret: None,
        }
    }

    /// The request's messages as Converse wants them: one text block each.
    fn messages(&self, request: &ChatRequest) -> Result<Vec<BedrockMessage>> {
        request
            .messages
            .iter()
            .map(|message| {
                let role = match message.role {
                    Role::User => ConversationRole::User,
                    Role::Assistant => ConversationRole::Assistant,
                };
                BedrockMessage::builder()
                    .role(role)
                    .content(ContentBlock::Text(message.content.clone()))
                    .build()
                    .map_err(|e| {
                        self.retrier()
                            .error(format!("could not build the request: {e}"), false)
                    })
            })
            .collect()
    }

    async fn try_once(
        &self,
        request: &ChatRequest,
        messages: &[BedrockMessage],
    ) -> Result<ChatResponse, Failure> {
        let max_tokens = request.max_tokens.unwrap_or(self.settings.max_tokens);
        let inference = InferenceConfiguration::builder()
            .max_tokens(i32::try_from(max_tokens).unwrap_or(i32::MAX))
            .temperature(request.temperature.unwrap_or(self.settings.temperature))
            .build();
        let mut call = self
            .client
            .converse()
            .model_id(&self.settings.model_id)
            .set_messages(Some(messages.to_vec()))
            .inference_config(inference);
        if let Some(system) = &request.system {
            call = call.system(SystemContentBlock::Text(system.clone()));
        }
        let output = call.send().await.map_err(|e| self.failure(e))?;
        answer(output, &self.settings.model_id).map_err(Failure::Malformed)
    }

    /// What one failed call means for the retry loop.
    fn failure(&self, error: SdkError<ConverseError>) -> Failure {
        let chain = || truncate(&crate::error::chain(&error), MAX_CHAIN_CHARS);
        match &error {
            SdkError::TimeoutError(_) => Failure::Transient {
                reason: format!(
                    "no complete answer within the {} s timeout",
                    self.settings.timeout.as_secs_f64()
                ),
                retry_after: None,
            },
            SdkError::DispatchFailure(dispatch) if dispatch.is_user() => {
                Failure::Permanent(format!("could not send the request: {}", chain()))
            }
            SdkError::DispatchFailure(dispatch) if dispatch.is_timeout() => Failure::Transient {
                reason: format!("timed out: {}", chain()),
                retry_after: None,
            },
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => Failure::Transient {
                reason: format!("the connection to Bedrock failed: {}", chain()),
                retry_after: None,
            },
            SdkError::ConstructionFailure(_) => {
                Failure::Permanent(format!("could not build the request: {}", chain()))
            }
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let err = service.err();
                if (200..300).contains(&status) {
                    // The SDK could not read a 2xx body as a Converse answer.
                    return Failure::Malformed(format!(
                        "not a Converse answer: {}",
                        truncate(&crate::error::chain(err), MAX_CHAIN_CHARS)
                    ));
                }
                let detail = ProviderDetail {
                    message: err.message().map(str::to_owned),
                    kinds: err.code().map(str::to_owned).into_iter().collect(),
                };
                let reason = match StatusCode::from_u16(status) {
                    Ok(code) => status_reason(code, &detail),
                    Err(_) => format!("HTTP {status}: {}", chain()),
                };
                let transient = err.code().is_some_and(|c| TRANSIENT_CODES.contains(&c))
                    || matches!(status, 408 | 429 | 500..=599);
                if transient {
                    Failure::Transient {
                        reason,
                        retry_after: None,
                    }
                } else {
                    Failure::Permanent(reason)
                }
            }
            _ => Failure::Transient {
                reason: chain(),
                retry_after: None,
            },
        }
    }
}

/// The answer's text (its text blocks, concatenated), why it stopped and its token counts;
/// an `Err` when there is no text to read.
fn answer(output: ConverseOutput, model_id: &str) -> Result<ChatResponse, String> {
    let Some(message) = output.output().and_then(|o| o.as_message().ok()) else {
        return Err("the answer has no output message".into());
    };
    let texts: Vec<&str> = message
        .content()
        .iter()
        .filter_map(|block| block.as_text().ok())
        .map(String::as_str)
        .collect();
    if texts.is_empty() {
        return Err("the answer has no text content block".into());
    }
    let finish = match output.stop_reason() {
        StopReason::EndTurn | StopReason::StopSequence => FinishReason::Stop,
        // Both cut the text off: the output limit, or the context window filled by it.
        StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => FinishReason::Length,
        _ => FinishReason::Other,
    };
    let tokens = |n: i32| u32::try_from(n).ok();
    Ok(ChatResponse {
        text: texts.concat(),
        model: model_id.to_owned(),
        finish,
        input_tokens: output.usage().and_then(|u| tokens(u.input_tokens())),
        output_tokens: output.usage().and_then(|u| tokens(u.output_tokens())),
    })
}

impl ChatModel for BedrockChat {
    fn model_id(&self) -> String {
        format!("{PROVIDER}:{}", self.settings.model_id)
    }

    fn max_input_chars(&self) -> usize {
        self.settings.max_input_chars()
    }

    fn chat<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<ChatResponse>> {
        Box::pin(async move {
            let messages = self.messages(request)?;
            let started = std::time::Instant::now();
            let response = self
                .retrier()
                .run(|| self.try_once(request, &messages))
                .await?;
            super::log_answer(PROVIDER, &response, started);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_bedrockruntime::types::{ConverseOutput as Output, TokenUsage};

    use super::*;

    fn output(blocks: Vec<ContentBlock>, stop: StopReason) -> ConverseOutput {
        let message = BedrockMessage::builder()
            .role(ConversationRole::Assistant)
            .set_content(Some(blocks))
            .build()
            .unwrap();
        ConverseOutput::builder()
            .output(Output::Message(message))
            .stop_reason(stop)
            .usage(
                TokenUsage::builder()
                    .input_tokens(7)
                    .output_tokens(2)
                    .total_tokens(9)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn text_blocks_are_joined_and_max_tokens_is_length() {
        let got = answer(
            output(
                vec![
                    ContentBlock::Text("Раз, ".into()),
                    ContentBlock::Text("два".into()),
                ],
                StopReason::MaxTokens,
            ),
            "eu.anthropic.claude",
        )
        .unwrap();
        assert_eq!(got.text, "Раз, два");
        assert_eq!(got.finish, FinishReason::Length);
        assert_eq!(got.model, "eu.anthropic.claude");
        assert_eq!((got.input_tokens, got.output_tokens), (Some(7), Some(2)));
        let stop = |reason| {
            answer(output(vec![ContentBlock::Text("x".into())], reason), "m")
                .unwrap()
                .finish
        };
        assert_eq!(stop(StopReason::EndTurn), FinishReason::Stop);
        assert_eq!(stop(StopReason::StopSequence), FinishReason::Stop);
        assert_eq!(
            stop(StopReason::ModelContextWindowExceeded),
            FinishReason::Length
        );
        assert_eq!(stop(StopReason::GuardrailIntervened), FinishReason::Other);
        assert_eq!(
            answer(output(vec![], StopReason::EndTurn), "m").unwrap_err(),
            "the answer has no text content block"
        );
    }
}
