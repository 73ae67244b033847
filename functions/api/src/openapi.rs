//! The OpenAPI 3 document: paths come from the handlers' `#[utoipa::path]` (collected by the
//! router), schemas from the request and response types; this adds the API's description,
//! its security schemes, and the problem responses every authenticated operation can give.

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::Modify;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, ResponseBuilder};

use crate::problem::ProblemBody;

/// The document's fixed part.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "VoxPersona API",
        description = "Recordings of hospitality design audits and guest interviews, their \
                       transcripts and reports, reference data, and (when configured) search \
                       and answers. Authenticate with `Authorization: Bearer <key>` or \
                       `X-Api-Key: <key>`. Errors are `application/problem+json`."
    ),
    components(schemas(ProblemBody)),
    security(("bearer" = []), ("api_key" = [])),
    modifiers(&SecuritySchemes),
    tags(
        (name = "recordings", description = "Uploads and their progress"),
        (name = "audits", description = "Stored reports"),
        (name = "transcriptions", description = "Transcripts"),
        (name = "reference", description = "Scenarios, report types, buildings"),
        (name = "search", description = "Search and answers"),
        (name = "keys", description = "API keys (admin)"),
        (name = "state", description = "Health and index state"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("vox_...")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
    }
}

/// Adds the problem responses every operation can give (400, 500; 413 and 415 to those
/// with a body; 401, 403 and 503 to those that need a key) where the operation does not
/// document its own.
pub fn add_problem_responses(openapi: &mut OpenApi) {
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                Content::new(Some(Ref::from_schema_name("ProblemBody"))),
            )
            .build()
    };
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let has_body = operation.request_body.is_some();
            // An explicit empty requirement marks an operation open to anyone.
            let open = operation
                .security
                .as_ref()
                .is_some_and(|s| s.iter().any(|r| r == &Default::default()));
            let responses = &mut operation.responses.responses;
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem(description).into());
            };
            add(
                "400",
                "A parameter or body field is not valid (`field` names it)",
            );
            add("500", "An internal error (logged with the request id)");
            if has_body {
                add("413", "The body is over 1 MiB");
                add("415", "The body is not JSON");
            }
            if !open {
                add("401", "No API key, or an unknown or revoked one");
                add("403", "The caller's role does not allow this");
                add("503", "A dependency is unavailable");
            }
        }
    }
}

/// The complete document, serialized once.
pub fn document(doc: &OpenApi) -> Bytes {
    Bytes::from(doc.to_json().unwrap_or_else(|_| "{}".to_owned()))
}

/// `GET /openapi.json` (no authentication).
pub async fn serve(doc: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc,
    )
        .into_response()
}
