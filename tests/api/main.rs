//! The HTTP API in process: the router called with `tower::ServiceExt::oneshot` against a
//! real PostgreSQL (a database per test) and the S3/SQS emulator.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod audits;
mod auth;
mod console;
mod recordings;
mod reference;
mod search;
#[path = "../db/support.rs"]
#[allow(dead_code)]
mod support;
mod transcripts;

use std::sync::Arc;
use std::time::Duration;

use api::{AppState, Role, Settings};
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;
use vox_tests::TestDb;
use vox_tests::aws::LocalAws;

/// The router on a database of its own, with one key per role.
#[derive(Debug)]
pub struct App {
    pub db: TestDb,
    pub aws: Option<LocalAws>,
    pub router: axum::Router,
    pub admin: String,
    pub analyst: String,
    pub uploader: String,
}

/// The sentence encoder, loaded once per test binary.
pub fn embedder() -> Arc<dyn common::embed::Embedder> {
    static E: std::sync::OnceLock<Arc<dyn common::embed::Embedder>> = std::sync::OnceLock::new();
    E.get_or_init(|| {
        let dir = std::env::var_os("VOX_MODELS_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                    .join(".cache/voxpersona/models")
            });
        Arc::new(
            common::embed::UseEmbedder::load(&common::embed::EmbedConfig::new(dir))
                .expect("embedding model is prepared (infra/local/models/prepare_embedding.sh)"),
        )
    })
    .clone()
}

/// What a call answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Asserts a problem response of this status and `type` suffix, and returns its body.
    pub fn problem(&self, status: u16, kind: &str) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.content_type(), "application/problem+json");
        let body = self.json();
        assert_eq!(body["type"], format!("urn:voxpersona:problem:{kind}"));
        assert_eq!(body["status"], status);
        assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
        body
    }
}

impl App {
    /// With the emulator's S3 (a bucket of its own) for tests that upload.
    pub async fn with_s3() -> Self {
        let aws = LocalAws::new().await.unwrap();
        let s3 = aws.s3.clone();
        let bucket = aws.bucket.clone();
        Self::build(s3, bucket, Some(aws), false).await
    }

    /// Without S3 buckets (presigning needs none, and nothing here uploads).
    pub async fn new() -> Self {
        let sdk = common::aws::local(&vox_tests::aws::moto_url()).await;
        let s3 = common::storage::S3Store::new(&sdk, true);
        Self::build(s3, "vox-unused".into(), None, false).await
    }

    /// With search and answers (the real sentence encoder, offline answers, no snapshot:
    /// stored chunks are scanned exactly; deep questions answered in process).
    pub async fn with_search() -> Self {
        let sdk = common::aws::local(&vox_tests::aws::moto_url()).await;
        let s3 = common::storage::S3Store::new(&sdk, true);
        Self::build(s3, "vox-unused".into(), None, true).await
    }

    async fn build(
        s3: common::storage::S3Store,
        bucket: String,
        aws: Option<LocalAws>,
        search: bool,
    ) -> Self {
        let db = TestDb::new().await.unwrap();
        let search = search.then(|| {
            let searcher = common::search::Searcher::new(db.pool.clone(), embedder());
            Arc::new(api::SearchState::new(
                common::search::answer::Answerer::new(searcher, None),
            ))
        });
        let state = AppState {
            pool: db.pool.clone(),
            s3,
            settings: Arc::new(Settings {
                recordings_bucket: bucket,
                recordings_prefix: "recordings/".into(),
                upload_url_ttl: Duration::from_secs(900),
                max_recording_bytes: 50_000_000,
                media_url_ttl: Duration::from_secs(300),
            }),
            search,
            media_origin: Some(vox_tests::aws::moto_url()),
        };
        let conn = db.pool.get().await.unwrap();
        let mut keys = Vec::new();
        for (name, role) in [
            ("admin", Role::Admin),
            ("analyst", Role::Analyst),
            ("uploader", Role::Uploader),
        ] {
            keys.push(api::keys::create(&conn, name, role).await.unwrap().1);
        }
        drop(conn);
        let [admin, analyst, uploader] = <[String; 3]>::try_from(keys).unwrap();
        Self {
            router: api::router(state),
            db,
            aws,
            admin,
            analyst,
            uploader,
        }
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        self.send(request).await
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, key: &str) -> Answer {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }
}

#[tokio::test]
async fn health_needs_no_key_and_checks_the_database() {
    let app = App::new().await;

    let answer = app.call(Method::GET, "/health", None, None).await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        serde_json::json!({"status": "ok", "database": "ok"})
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_needs_no_key() {
    let app = App::new().await;

    let answer = app.call(Method::GET, "/openapi.json", None, None).await;

    assert_eq!(answer.status, StatusCode::OK);
    let doc = answer.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/health", "get"),
        ("/scenarios", "get"),
        ("/report-types", "get"),
        ("/buildings", "get"),
        ("/recordings", "post"),
        ("/recordings", "get"),
        ("/recordings/{id}", "get"),
        ("/audits", "get"),
        ("/audits/{id}", "get"),
        ("/audits/{id}/export", "get"),
        ("/transcriptions/{id}", "get"),
        ("/transcriptions/{id}/export", "get"),
        ("/keys", "post"),
        ("/keys", "get"),
        ("/keys/{id}", "delete"),
        ("/search", "post"),
        ("/answers", "post"),
        ("/questions", "post"),
        ("/questions/{id}", "get"),
        ("/index", "get"),
        ("/recordings/{id}/media", "get"),
    ] {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(
            op["responses"]["400"].is_object(),
            "{method} {path} lacks its problem responses"
        );
    }
    let mut operation_ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let documented = operation_ids.len();
    operation_ids.sort_unstable();
    operation_ids.dedup();
    assert_eq!(
        operation_ids.len(),
        documented,
        "operation ids must be unique"
    );
    assert_eq!(documented, 21);
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["name"], "X-Api-Key");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert!(doc["components"]["schemas"]["NewRecording"]["properties"]["scenario"].is_object());
    assert!(paths["/audits"]["get"]["responses"]["401"].is_object());
    assert!(paths["/health"]["get"]["responses"]["401"].is_null());
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = App::new().await;

    let missing = app.get("/nowhere", &app.admin).await;
    let wrong_method = app.call(Method::PUT, "/scenarios", None, None).await;

    missing.problem(404, "not-found");
    wrong_method.problem(405, "method-not-allowed");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_given_one_is_kept() {
    let app = App::new().await;

    let generated = app.call(Method::GET, "/health", None, None).await;
    let given = app
        .send(
            Request::get("/health")
                .header("x-request-id", "trace-me-42")
                .body(Body::empty())
                .unwrap(),
        )
        .await;

    let id = generated.headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "{id} is not a UUID");
    assert_eq!(given.headers["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn a_database_fault_is_a_500_that_shows_no_sql() {
    let app = App::new().await;
    let conn = app.db.pool.get().await.unwrap();
    conn.batch_execute("ALTER TABLE scenario RENAME TO scenario_gone")
        .await
        .unwrap();

    let answer = app.get("/scenarios", &app.analyst).await;

    let body = answer.problem(500, "internal");
    let text = body.to_string();
    for leak in ["scenario", "SELECT", "relation", "PostgreSQL"] {
        assert!(!text.contains(leak), "{leak:?} leaked: {text}");
    }
    assert!(answer.headers.contains_key("x-request-id"));
}
