//! Errors as `application/problem+json` (RFC 9457): a stable `type` per kind of problem, a
//! title, the status, a human `detail`, and the `field` at fault for validation errors.
//!
//! Server faults are logged with their whole cause chain and answered with an opaque body:
//! SQL, S3 and stack details never reach a client.

use std::any::Any;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::error::chain;
use serde::Serialize;
use utoipa::ToSchema;

/// What went wrong, as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: Kind,
    pub detail: String,
    pub field: Option<String>,
}

/// The kinds of problem; each has one stable `type` URI, title and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value in the request is not valid (`field` names it).
    Validation,
    /// The body is not JSON, or not of the expected shape.
    MalformedBody,
    /// No credentials, or unknown or revoked ones.
    Unauthorized,
    /// The caller's role does not allow this.
    Forbidden,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    /// The body's content type is not supported.
    UnsupportedMediaType,
    /// Search and answers are not configured in this deployment.
    SearchUnavailable,
    /// A dependency (PostgreSQL, S3) is unreachable; trying again later may work.
    Unavailable,
    Internal,
}

impl Kind {
    /// The problem's `type`: stable, one per kind.
    pub fn type_uri(self) -> &'static str {
        match self {
            Kind::Validation => "urn:voxpersona:problem:validation",
            Kind::MalformedBody => "urn:voxpersona:problem:malformed-body",
            Kind::Unauthorized => "urn:voxpersona:problem:unauthorized",
            Kind::Forbidden => "urn:voxpersona:problem:forbidden",
            Kind::NotFound => "urn:voxpersona:problem:not-found",
            Kind::MethodNotAllowed => "urn:voxpersona:problem:method-not-allowed",
            Kind::PayloadTooLarge => "urn:voxpersona:problem:payload-too-large",
            Kind::UnsupportedMediaType => "urn:voxpersona:problem:unsupported-media-type",
            Kind::SearchUnavailable => "urn:voxpersona:problem:search-unavailable",
            Kind::Unavailable => "urn:voxpersona:problem:unavailable",
            Kind::Internal => "urn:voxpersona:problem:internal",
        }
    }

    /// A short summary that does not change from occurrence to occurrence.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Validation => "The request is not valid",
            Kind::MalformedBody => "The request body cannot be read",
            Kind::Unauthorized => "Authentication is required",
            Kind::Forbidden => "Not allowed for this role",
            Kind::NotFound => "Not found",
            Kind::MethodNotAllowed => "Method not allowed",
            Kind::PayloadTooLarge => "The request body is too large",
            Kind::UnsupportedMediaType => "Unsupported media type",
            Kind::SearchUnavailable => "Search is not configured",
            Kind::Unavailable => "Temporarily unavailable",
            Kind::Internal => "Internal error",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Kind::Validation | Kind::MalformedBody => StatusCode::BAD_REQUEST,
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::SearchUnavailable | Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The body of every error response, as documented in the OpenAPI document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProblemBody {
    /// Stable URI of the kind of problem, e.g. `urn:voxpersona:problem:validation`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    /// What happened, for a person.
    pub detail: String,
    /// The request field at fault (validation errors), e.g. `scenario` or `limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            field: None,
        }
    }

    /// A validation error naming the field at fault.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: Kind::Validation,
            detail: detail.into(),
            field: Some(field.into()),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(Kind::Unauthorized, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(Kind::Forbidden, detail)
    }

    /// A server fault: logged here with its causes, answered opaquely.
    pub fn internal(error: &dyn std::error::Error) -> Self {
        tracing::error!(error = %chain(error), "request failed");
        Self::new(
            Kind::Internal,
            "the request could not be completed; it has been logged with its request id",
        )
    }

    /// A dependency that is down: logged here with its causes, answered opaquely.
    pub fn unavailable(error: &dyn std::error::Error) -> Self {
        tracing::warn!(error = %chain(error), "dependency unavailable");
        Self::new(
            Kind::Unavailable,
            "a service the API depends on is unavailable; try again shortly",
        )
    }

    fn body(&self) -> ProblemBody {
        ProblemBody {
            type_uri: self.kind.type_uri().to_owned(),
            title: self.kind.title().to_owned(),
            status: self.kind.status().as_u16(),
            detail: self.detail.clone(),
            field: self.field.clone(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.kind.status(), Json(self.body())).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.kind == Kind::Unauthorized {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="voxpersona", ApiKey header="X-Api-Key""#),
            );
        }
        response
    }
}

impl From<common::Error> for Problem {
    /// Input the domain refused becomes 400 naming the field; a lost connection 503;
    /// anything else 500.
    fn from(e: common::Error) -> Self {
        use common::Error as E;
        match e {
            E::InvalidInput { field, reason } => Problem::invalid(field, reason),
            E::UnknownScenario { ref name } => {
                Problem::invalid("scenario", format!("unknown scenario {name:?}"))
            }
            E::UnknownReportType {
                ref name,
                ref scenario,
            } => Problem::invalid(
                "report_type",
                format!("unknown report type {name:?} in scenario {scenario:?}"),
            ),
            E::UnknownBuilding { ref name } => {
                Problem::invalid("building", format!("unknown building {name:?}"))
            }
            E::InvalidPair {
                ref building,
                ref report_type,
            } => Problem::invalid(
                "report_types",
                format!("report type {report_type:?} is not valid for building {building:?}"),
            ),
            E::UnknownQuestion { id } => {
                Problem::not_found(format!("question {id} does not exist"))
            }
            E::Pool(_) => Problem::unavailable(&e),
            E::Db(ref db) if db.code().is_none() => Problem::unavailable(&e),
            E::Storage {
                retryable: true, ..
            } => Problem::unavailable(&e),
            other => Problem::internal(&other),
        }
    }
}

/// The response to a panic inside a handler: logged, answered with an opaque 500.
pub fn from_panic(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "handler panicked");
    Problem::new(
        Kind::Internal,
        "the request could not be completed; it has been logged with its request id",
    )
    .into_response()
}
