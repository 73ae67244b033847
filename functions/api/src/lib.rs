//! The HTTP API: one axum router served by Lambda (through lambda_http behind API Gateway)
//! and by `vox serve` locally.
//!
//! Handlers check the caller's role, delegate to `common::db` (and the S3 presigner), and
//! turn the results into JSON; every failure is an `application/problem+json` body that
//! names the field at fault and never shows internals.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use common::config::{self, ConfigError};
use common::db::{DbConfig, PgPool};
use common::storage::S3Store;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::{Level, info_span};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod auth;
mod citations;
pub mod console;
mod export;
mod extract;
pub mod keys;
mod openapi;
mod pagination;
pub mod problem;
mod routes;
pub mod search;
mod upload;

pub use auth::{Caller, Permission, Role};
pub use problem::Problem;
pub use search::SearchState;

/// Request bodies larger than this are refused with 413 (uploads go straight to S3).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Settings of the API, read once per cold start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where recordings are uploaded (`VOX_RECORDINGS_BUCKET`).
    pub recordings_bucket: String,
    /// The key prefix of uploads (`VOX_RECORDINGS_PREFIX`, default `recordings/`): where the
    /// bucket's ObjectCreated notification and the transcribe function look.
    pub recordings_prefix: String,
    /// How long a presigned upload URL stays valid (`VOX_UPLOAD_URL_TTL_SECS`, default 900).
    pub upload_url_ttl: Duration,
    /// The largest recording accepted (`VOX_MAX_RECORDING_BYTES`, default 2 GB, as the
    /// transcribe stage).
    pub max_recording_bytes: u64,
    /// How long a presigned playback URL stays valid (`VOX_MEDIA_URL_TTL_SECS`, default 300).
    pub media_url_ttl: Duration,
}

impl Settings {
    /// Reads the settings; each error names its variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let ttl: u64 = config::parsed_or("VOX_UPLOAD_URL_TTL_SECS", 900)?;
        if !(60..=7 * 24 * 3600).contains(&ttl) {
            return Err(ConfigError::Invalid {
                var: "VOX_UPLOAD_URL_TTL_SECS",
                reason: format!("{ttl} is not between 60 seconds and 7 days"),
            });
        }
        let media_ttl: u64 = config::parsed_or("VOX_MEDIA_URL_TTL_SECS", 300)?;
        if !(30..=12 * 3600).contains(&media_ttl) {
            return Err(ConfigError::Invalid {
                var: "VOX_MEDIA_URL_TTL_SECS",
                reason: format!("{media_ttl} is not between 30 seconds and 12 hours"),
            });
        }
        Ok(Self {
            recordings_bucket: config::required("VOX_RECORDINGS_BUCKET")?,
            recordings_prefix: {
                let p = config::or_default("VOX_RECORDINGS_PREFIX", "recordings/")?;
                let p = p.trim_matches('/');
                if p.is_empty() {
                    String::new()
                } else {
                    format!("{p}/")
                }
            },
            upload_url_ttl: Duration::from_secs(ttl),
            max_recording_bytes: config::parsed_or("VOX_MAX_RECORDING_BYTES", 2_000_000_000)?,
            media_url_ttl: Duration::from_secs(media_ttl),
        })
    }
}

/// Everything a request needs, built once per cold start and shared by all requests.
#[derive(Debug, Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Presigns uploads into [`Settings::recordings_bucket`].
    pub s3: S3Store,
    pub settings: Arc<Settings>,
    /// Search and answers; `None` when they could not be set up (`VOX_SEARCH=off`, or the
    /// encoder failed to load): the search endpoints then answer 503.
    pub search: Option<Arc<SearchState>>,
    /// Where presigned uploads and playback URLs point (`scheme://host[:port]` of the
    /// recordings bucket), allowed by the console's Content-Security-Policy; `None` when it
    /// could not be worked out (the console then cannot upload or play).
    pub media_origin: Option<String>,
}

impl AppState {
    /// PostgreSQL, S3 and settings from the environment (`DATABASE_URL`..., the AWS SDK's
    /// usual variables, [`Settings::from_env`]).
    pub async fn from_env() -> Result<Self, common::Error> {
        let sdk = common::aws::load().await;
        let aws = common::aws::AwsSettings::from_env()?;
        let pool = PgPool::new(&DbConfig::from_env()?)?;
        let s3 = S3Store::new(&sdk, aws.s3_path_style);
        let search = if config::optional("VOX_SEARCH")?.as_deref() == Some("off") {
            None
        } else {
            match SearchState::from_env(pool.clone(), &s3, &sdk).await {
                Ok(state) => Some(Arc::new(state)),
                Err(e) => {
                    tracing::error!(error = %common::error::chain(&e), "search is not available");
                    None
                }
            }
        };
        let settings = Settings::from_env()?;
        let media_origin = upload::bucket_origin(&s3, &settings.recordings_bucket).await;
        if media_origin.is_none() {
            tracing::warn!("no presigned URL could be made: the console cannot upload or play");
        }
        Ok(Self {
            pool,
            s3,
            settings: Arc::new(settings),
            search,
            media_origin,
        })
    }
}

/// The whole API: routes, the OpenAPI document at `/openapi.json`, problem responses for
/// unknown routes, request ids, request logs, the body limit and panic containment.
pub fn router(state: AppState) -> Router {
    let (api, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(routes::health::health))
        .routes(routes!(routes::reference::scenarios))
        .routes(routes!(routes::reference::report_types))
        .routes(routes!(routes::reference::buildings))
        .routes(routes!(
            routes::recordings::create,
            routes::recordings::list
        ))
        .routes(routes!(routes::recordings::get))
        .routes(routes!(routes::recordings::media))
        .routes(routes!(routes::audits::list))
        .routes(routes!(routes::audits::get))
        .routes(routes!(routes::audits::export))
        .routes(routes!(routes::transcriptions::get))
        .routes(routes!(routes::transcriptions::export))
        .routes(routes!(routes::keys::create, routes::keys::list))
        .routes(routes!(routes::keys::revoke))
        .routes(routes!(routes::search::search))
        .routes(routes!(routes::search::answer))
        .routes(routes!(routes::search::ask))
        .routes(routes!(routes::search::question))
        .routes(routes!(routes::search::index_state))
        .split_for_parts();
    openapi::add_problem_responses(&mut doc);
    let doc = openapi::document(&doc);
    let request_id = HeaderName::from_static("x-request-id");
    api.route(
        "/openapi.json",
        axum::routing::get(move || openapi::serve(doc.clone())),
    )
    .route("/", axum::routing::get(console::shell))
    .route("/console/{file}", axum::routing::get(console::asset))
    .fallback(routes::not_found)
    .method_not_allowed_fallback(routes::method_not_allowed)
    .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
    .layer(CatchPanicLayer::custom(problem::from_panic))
    .layer(PropagateRequestIdLayer::new(request_id.clone()))
    .layer(
        TraceLayer::new_for_http()
            .make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                info_span!(
                    "request",
                    method = %req.method(),
                    path = %req.uri().path(),
                    request_id = %id,
                    caller = tracing::field::Empty,
                )
            })
            .on_response(DefaultOnResponse::new().level(Level::INFO))
            // Server faults are logged as errors, with their causes, where they happen;
            // this line only marks the response.
            .on_failure(DefaultOnFailure::new().level(Level::WARN)),
    )
    .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
    .with_state(state)
}
