//! The analyze stage with a hosted model: an OpenAI-compatible server on 127.0.0.1 (wiremock)
//! answers the catalog's prompts. Long transcripts go in windows, quotes the transcript does
//! not hold are flagged, an invalid metrics answer is asked once more with the validation
//! error, and a second invalid answer fails the job with the reason. The same passes run
//! through Amazon Bedrock (`VOX_LLM_PROVIDER=bedrock`) against a server speaking Converse.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::analysis::catalog::{self, Catalog};
use common::analysis::llm::LlmReports;
use common::analysis::stage::{Outcome, Settings, Stage};
use common::llm::settings::ChatSettings;
use common::llm::{BedrockChat, ChatConfig, ChatModel, OpenAiChat};
use serde_json::{Value, json};
use vox_tests::TestDb;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::analyze::{engines, setup};

/// Answers like a model would: narratives quote one true and one invented sentence; metrics
/// come wrong first (or always, when `always_bad_metrics`), right after a correction. Speaks
/// OpenAI's chat completions, or Bedrock's Converse when `converse`.
struct FakeModel {
    true_quote: String,
    always_bad_metrics: bool,
    calls: Arc<AtomicUsize>,
    converse: bool,
}

fn completion(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "x", "object": "chat.completion", "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10}
    }))
}

/// A Converse answer (Bedrock's wire format).
fn converse(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 10, "outputTokens": 10, "totalTokens": 20},
        "metrics": {"latencyMs": 100}
    }))
}

impl Respond for FakeModel {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let messages = body["messages"].as_array().unwrap();
        let first = if self.converse {
            messages[0]["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
        } else {
            messages[0]["content"].as_str().unwrap_or_default()
        };
        let text = if first.contains("JSON") {
            if messages.len() > 1 && !self.always_bad_metrics {
                "```json\n{\"общее_количество_пунктов_информации\": 5}\n```".to_owned()
            } else {
                "{\"пунктов\": \"пять\"}".to_owned()
            }
        } else {
            format!(
                "# Структурированный отчёт\n\n## 1. Фасад и входная группа\n- «{}»\n- «этой фразы в записи нет»\n",
                self.true_quote
            )
        };
        if self.converse {
            converse(&text)
        } else {
            completion(&text)
        }
    }
}

async fn stage_with_model(db: &TestDb, server: &MockServer, context_tokens: u32) -> Stage {
    let mut settings = ChatSettings::new("test-model", format!("{}/v1", server.uri()));
    settings.context_tokens = context_tokens;
    settings.max_tokens = 1000;
    let model: Arc<dyn ChatModel> = Arc::new(OpenAiChat::new(settings).unwrap());
    let (embedder, _) = engines();
    Stage {
        pool: db.pool.clone(),
        engine: Arc::new(LlmReports::new(model, Arc::clone(&embedder)).unwrap()),
        embedder,
        index: None,
        settings: Settings::default(),
        worker: "llm-worker".into(),
    }
}

#[tokio::test]
async fn hosted_passes_are_windowed_verified_and_metrics_retried_once() {
    let db = TestDb::new().await.unwrap();
    {
        let mut conn = db.pool.get().await.unwrap();
        let tx = conn.transaction().await.unwrap();
        catalog::sync(&tx, Catalog::embedded().unwrap())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let job = setup(&db, "design", "structured-audit", "hotel").await;
    let conn = db.pool.get().await.unwrap();
    let true_quote: String = conn
        .query_one(
            "SELECT text FROM transcription_segment WHERE transcription_id = $1 ORDER BY seq LIMIT 1",
            &[&job.transcription_id],
        )
        .await
        .unwrap()
        .get(0);
    let transcript_chars: i64 = conn
        .query_one(
            "SELECT length(transcription_text)::bigint FROM transcription WHERE transcription_id = $1",
            &[&job.transcription_id],
        )
        .await
        .unwrap()
        .get(0);
    let server = MockServer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(FakeModel {
            true_quote: true_quote.trim_end_matches('.').to_owned(),
            always_bad_metrics: false,
            calls: Arc::clone(&calls),
            converse: false,
        })
        .mount(&server)
        .await;
    // A context so small that every narrative pass needs several windows.
    let stage = stage_with_model(&db, &server, 2500).await;
    let outcome = stage.process(&job).await.unwrap();
    let Outcome::Analyzed {
        audit_ids,
        quotes,
        unverified_quotes,
        ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(audit_ids.len(), 4);
    // Three narratives, each merged to one true and one invented quote.
    assert_eq!((*quotes, *unverified_quotes), (6, 3));
    let narrative_calls = calls.load(Ordering::SeqCst) - 2;
    assert!(
        transcript_chars > 1000 && narrative_calls > 3,
        "{narrative_calls} calls for 3 passes over {transcript_chars} characters"
    );
    let rows = conn
        .query(
            "SELECT a.kind, a.metrics, a.engine, a.unverified_quotes, a.quotes, p.prompt_name
             FROM audit a LEFT JOIN prompts p ON p.prompt_id = a.prompt_id
             WHERE a.analysis_job_id = $1 ORDER BY a.pass",
            &[&job.analysis_job_id],
        )
        .await
        .unwrap();
    for row in &rows[..3] {
        assert_eq!(row.get::<_, i32>(3), 1);
        let quotes: Value = row.get(4);
        assert_eq!(quotes[1]["verified"], false, "{quotes}");
        assert_eq!(quotes[0]["verified"], true, "{quotes}");
        assert!(
            row.get::<_, Option<String>>(5).is_some(),
            "prompt version recorded"
        );
    }
    assert_eq!(
        rows[3].get::<_, Value>(1),
        json!({"общее_количество_пунктов_информации": 5})
    );
    assert_eq!(rows[3].get::<_, String>(2), "openai:test-model");
}

#[tokio::test]
async fn metrics_invalid_after_the_retry_fail_the_job_with_the_reason() {
    let db = TestDb::new().await.unwrap();
    let job = setup(&db, "design", "structured-audit", "hotel").await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(FakeModel {
            true_quote: "нет".into(),
            always_bad_metrics: true,
            calls: Arc::new(AtomicUsize::new(0)),
            converse: false,
        })
        .mount(&server)
        .await;
    let stage = stage_with_model(&db, &server, 32_768).await;
    let outcome = stage.process(&job).await.unwrap();
    let Outcome::Failed { reason, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(reason.contains("after one retry"), "{reason}");
    let conn = db.pool.get().await.unwrap();
    let (status, error, audits): (String, String, i64) = conn
        .query_one(
            "SELECT status, last_error,
                    (SELECT count(*) FROM audit WHERE analysis_job_id = $1)
             FROM analysis_job WHERE analysis_job_id = $1",
            &[&job.analysis_job_id],
        )
        .await
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap();
    assert_eq!((status.as_str(), audits), ("failed", 0));
    assert!(error.contains("structured-audit"), "{error}");
}

/// `VOX_LLM_PROVIDER=bedrock` end to end: the settings as the environment gives them, the
/// client on the SDK configuration the tests use for AWS (static credentials), with
/// `VOX_BEDROCK_ENDPOINT_URL` sending Converse to the fake; the reports are stored with
/// their quotes verified and the metrics after the one correction.
#[tokio::test]
async fn bedrock_passes_store_reports_with_verified_quotes() {
    let db = TestDb::new().await.unwrap();
    {
        let mut conn = db.pool.get().await.unwrap();
        let tx = conn.transaction().await.unwrap();
        catalog::sync(&tx, Catalog::embedded().unwrap())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let job = setup(&db, "design", "structured-audit", "hotel").await;
    let conn = db.pool.get().await.unwrap();
    let true_quote: String = conn
        .query_one(
            "SELECT text FROM transcription_segment WHERE transcription_id = $1 ORDER BY seq LIMIT 1",
            &[&job.transcription_id],
        )
        .await
        .unwrap()
        .get(0);
    let server = MockServer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path_regex("^/model/[^/]+/converse$"))
        .respond_with(FakeModel {
            true_quote: true_quote.trim_end_matches('.').to_owned(),
            always_bad_metrics: false,
            calls: Arc::clone(&calls),
            converse: true,
        })
        .mount(&server)
        .await;
    let uri = server.uri();
    let env = [
        ("VOX_LLM_PROVIDER", "bedrock"),
        ("VOX_BEDROCK_MODEL_ID", "eu.anthropic.claude-test-v1:0"),
        ("VOX_BEDROCK_ENDPOINT_URL", uri.as_str()),
        ("VOX_LLM_MAX_TOKENS", "1000"),
    ];
    let lookup = |var: &'static str| {
        Ok::<_, common::config::ConfigError>(
            env.iter()
                .find(|(name, _)| *name == var)
                .map(|(_, v)| (*v).to_owned()),
        )
    };
    let ChatConfig::Bedrock(settings) = ChatConfig::from_lookup(&lookup).unwrap() else {
        panic!("not bedrock");
    };
    // The SDK configuration of the tests' AWS (the emulator's endpoint, static credentials):
    // VOX_BEDROCK_ENDPOINT_URL takes Converse elsewhere.
    let sdk = common::aws::local(&vox_tests::aws::moto_url()).await;
    let model: Arc<dyn ChatModel> = Arc::new(BedrockChat::new(settings, &sdk).unwrap());
    let (embedder, _) = engines();
    let stage = Stage {
        pool: db.pool.clone(),
        engine: Arc::new(LlmReports::new(model, Arc::clone(&embedder)).unwrap()),
        embedder,
        index: None,
        settings: Settings::default(),
        worker: "bedrock-worker".into(),
    };

    let outcome = stage.process(&job).await.unwrap();

    let Outcome::Analyzed {
        audit_ids,
        quotes,
        unverified_quotes,
        ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(audit_ids.len(), 4);
    assert_eq!((*quotes, *unverified_quotes), (6, 3));
    // Three narratives in one window each, the metrics pass and its correction.
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    let sent = server.received_requests().await.unwrap();
    assert!(
        sent.iter().all(
            |r| r.url.path() == "/model/eu.anthropic.claude-test-v1%3A0/converse"
                && r.headers
                    .get("authorization")
                    .is_some_and(|v| v.to_str().unwrap().starts_with("AWS4-HMAC-SHA256 "))
        ),
        "every call is a signed Converse on the model"
    );
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body["inferenceConfig"]["maxTokens"], 1000);
    let rows = conn
        .query(
            "SELECT a.metrics, a.engine, a.unverified_quotes, a.quotes
             FROM audit a WHERE a.analysis_job_id = $1 ORDER BY a.pass",
            &[&job.analysis_job_id],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 4);
    for row in &rows[..3] {
        assert_eq!(row.get::<_, i32>(2), 1);
        let quotes: Value = row.get(3);
        assert_eq!(quotes[0]["verified"], true, "{quotes}");
        assert_eq!(quotes[1]["verified"], false, "{quotes}");
    }
    assert_eq!(
        rows[3].get::<_, Value>(0),
        json!({"общее_количество_пунктов_информации": 5})
    );
    for row in &rows {
        assert_eq!(
            row.get::<_, String>(1),
            "bedrock:eu.anthropic.claude-test-v1:0"
        );
    }
    let status: String = conn
        .query_one(
            "SELECT status FROM analysis_job WHERE analysis_job_id = $1",
            &[&job.analysis_job_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "done");
}
