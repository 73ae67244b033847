//! Who is calling and what their role allows.
//!
//! A caller presents an API key (`Authorization: Bearer <key>` or `X-Api-Key: <key>`), looked
//! up by its SHA-256 in `api_key`; or, behind API Gateway with a JWT authorizer, the
//! verified token's `role` (or `custom:role`) claim from the Lambda request context. The
//! request context only exists when lambda_http built the request from a real event, so a
//! client cannot forge it with headers.
//!
//! 401 means "who are you?" (no credentials, unknown or revoked key); 403 means "you may not"
//! (the role lacks the permission).

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use lambda_http::request::RequestContext;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::problem::Problem;

/// The roles of API keys and token claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including key management.
    Admin,
    /// Read, search and ask.
    Analyst,
    /// Create recordings and follow their status.
    Uploader,
}

/// What a request needs to be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Scenarios, report types, buildings: every role needs them to fill in an upload.
    Reference,
    /// Create recordings (presigned uploads).
    Upload,
    /// Recordings' status, stage and errors.
    ReadRecordings,
    /// Reports and transcripts.
    Read,
    /// Search, answers, questions, index state.
    Search,
    /// Create, list and revoke API keys.
    ManageKeys,
}

impl Role {
    /// The role named `name` (`admin`, `analyst`, `uploader`).
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim() {
            "admin" => Some(Role::Admin),
            "analyst" => Some(Role::Analyst),
            "uploader" => Some(Role::Uploader),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Uploader => "uploader",
        }
    }

    pub fn allows(self, permission: Permission) -> bool {
        use Permission as P;
        match self {
            Role::Admin => true,
            Role::Analyst => matches!(
                permission,
                P::Reference | P::ReadRecordings | P::Read | P::Search
            ),
            Role::Uploader => matches!(permission, P::Reference | P::Upload | P::ReadRecordings),
        }
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    ApiKey {
        id: i64,
        name: String,
    },
    /// Verified by API Gateway's JWT authorizer; `subject` is the token's `sub`.
    Token {
        subject: Option<String>,
    },
}

/// An authenticated caller. Extracting it answers 401 when there are no valid credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    pub credential: Credential,
}

impl Caller {
    /// Who the caller is, as recorded with what they create: `key:<api_key_id>` or
    /// `token:<sub>`; `None` for a token without a subject.
    pub fn principal(&self) -> Option<String> {
        match &self.credential {
            Credential::ApiKey { id, .. } => Some(format!("key:{id}")),
            Credential::Token { subject } => subject.as_deref().map(|s| format!("token:{s}")),
        }
    }

    /// Whose recordings the caller may see: `None` for every recording (analysts and admins),
    /// `Some(principal)` for only their own (uploaders). An uploader without a principal
    /// sees none (`Some("")` matches no creator).
    pub fn recordings_scope(&self) -> Option<String> {
        match self.role {
            Role::Uploader => Some(self.principal().unwrap_or_default()),
            Role::Admin | Role::Analyst => None,
        }
    }

    /// Ok when the role allows `permission`, else 403.
    pub fn require(&self, permission: Permission) -> Result<(), Problem> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "the {} role may not do this",
                self.role.as_str()
            )))
        }
    }
}

/// The SHA-256 under which a key is stored.
pub fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let claims = parts
            .extensions
            .get::<RequestContext>()
            .and_then(token_claims);
        let key = presented_key(&parts.headers)?;
        let caller = match (claims, key) {
            (Some(claims), None) => from_claims(&claims)?,
            (Some(claims), Some(key)) => match from_claims(&claims) {
                Ok(caller) => caller,
                Err(_) => from_key(state, &key).await?,
            },
            (None, Some(key)) => from_key(state, &key).await?,
            (None, None) => {
                return Err(Problem::unauthorized(
                    "an API key is required: Authorization: Bearer <key> or X-Api-Key: <key>",
                ));
            }
        };
        let who = caller.principal().unwrap_or_else(|| "token:?".into());
        tracing::Span::current().record("caller", who.as_str());
        Ok(caller)
    }
}

/// The key in `Authorization: Bearer` or `X-Api-Key`, if any. Another authorization scheme
/// is a 401 that says which one to use.
fn presented_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| Problem::unauthorized("the Authorization header is not ASCII"))?;
        let Some((scheme, key)) = value.trim().split_once(' ') else {
            return Err(Problem::unauthorized(
                "the Authorization header must be `Bearer <key>`",
            ));
        };
        if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
            return Err(Problem::unauthorized(
                "the Authorization header must be `Bearer <key>`",
            ));
        }
        return Ok(Some(key.trim().to_owned()));
    }
    match headers.get("x-api-key") {
        Some(value) => {
            let key = value
                .to_str()
                .map_err(|_| Problem::unauthorized("the X-Api-Key header is not ASCII"))?
                .trim();
            if key.is_empty() {
                return Err(Problem::unauthorized("the X-Api-Key header is empty"));
            }
            Ok(Some(key.to_owned()))
        }
        None => Ok(None),
    }
}

async fn from_key(state: &AppState, key: &str) -> Result<Caller, Problem> {
    let conn = state.pool.get().await?;
    let Some(found) = common::db::api_key::authenticate(&conn, &key_digest(key)).await? else {
        return Err(Problem::unauthorized("the API key is unknown or revoked"));
    };
    let role = Role::parse(&found.role).ok_or_else(|| {
        Problem::internal(&common::Error::InvalidInput {
            field: "role",
            reason: format!("stored key {} has role {:?}", found.api_key_id, found.role),
        })
    })?;
    Ok(Caller {
        role,
        credential: Credential::ApiKey {
            id: found.api_key_id,
            name: found.name,
        },
    })
}

/// Claims of a token verified by API Gateway: an HTTP API's JWT authorizer
/// (`authorizer.jwt.claims`), a REST API's Cognito authorizer (`authorizer.claims`) or a
/// Lambda authorizer's context (`authorizer.role`).
fn token_claims(context: &RequestContext) -> Option<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = match context {
        RequestContext::ApiGatewayV2(ctx) => {
            let authorizer = ctx.authorizer.as_ref()?;
            match &authorizer.jwt {
                Some(jwt) => jwt
                    .claims
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                None => string_fields(&authorizer.fields),
            }
        }
        RequestContext::ApiGatewayV1(ctx) => {
            let fields = &ctx.authorizer.fields;
            match fields.get("claims").and_then(|c| c.as_object()) {
                Some(claims) => claims
                    .iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                    .collect(),
                None => string_fields(fields),
            }
        }
        _ => return None,
    };
    (!pairs.is_empty()).then_some(pairs)
}

fn string_fields(
    fields: &std::collections::HashMap<String, serde_json::Value>,
) -> Vec<(String, String)> {
    fields
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
        .collect()
}

fn from_claims(claims: &[(String, String)]) -> Result<Caller, Problem> {
    let claim = |name: &str| {
        claims
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let role = claim("role")
        .or_else(|| claim("custom:role"))
        .and_then(Role::parse)
        .ok_or_else(|| {
            Problem::forbidden(
                "the token has no role or custom:role claim naming admin, analyst or uploader",
            )
        })?;
    Ok(Caller {
        role,
        credential: Credential::Token {
            subject: claim("sub").map(str::to_owned),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_what_the_issue_says() {
        use Permission as P;
        let all = [
            P::Reference,
            P::Upload,
            P::ReadRecordings,
            P::Read,
            P::Search,
            P::ManageKeys,
        ];
        assert!(all.iter().all(|p| Role::Admin.allows(*p)));
        let analyst: Vec<_> = all.iter().filter(|p| Role::Analyst.allows(**p)).collect();
        assert_eq!(
            analyst,
            [&P::Reference, &P::ReadRecordings, &P::Read, &P::Search]
        );
        let uploader: Vec<_> = all.iter().filter(|p| Role::Uploader.allows(**p)).collect();
        assert_eq!(uploader, [&P::Reference, &P::Upload, &P::ReadRecordings]);
    }

    #[test]
    fn a_custom_role_claim_is_accepted_and_a_missing_one_is_forbidden() {
        let claims = vec![
            ("sub".to_owned(), "u-1".to_owned()),
            ("custom:role".to_owned(), "analyst".to_owned()),
        ];
        let caller = from_claims(&claims).unwrap();
        assert_eq!(caller.role, Role::Analyst);
        assert_eq!(
            caller.credential,
            Credential::Token {
                subject: Some("u-1".into())
            }
        );
        let err = from_claims(&[("sub".to_owned(), "u-1".to_owned())]).unwrap_err();
        assert_eq!(err.kind, crate::problem::Kind::Forbidden);
    }

    #[test]
    fn uploaders_are_scoped_to_their_own_principal() {
        let caller = |role, credential| Caller { role, credential };
        let key = || Credential::ApiKey {
            id: 7,
            name: "bot".into(),
        };
        let token = |subject: Option<&str>| Credential::Token {
            subject: subject.map(str::to_owned),
        };
        assert_eq!(
            caller(Role::Uploader, key()).recordings_scope().as_deref(),
            Some("key:7")
        );
        assert_eq!(
            caller(Role::Uploader, token(Some("u-1")))
                .recordings_scope()
                .as_deref(),
            Some("token:u-1")
        );
        // No subject: nothing to match, so nothing is seen (never everything).
        let anonymous = caller(Role::Uploader, token(None));
        assert_eq!(anonymous.principal(), None);
        assert_eq!(anonymous.recordings_scope().as_deref(), Some(""));
        assert_eq!(caller(Role::Analyst, key()).recordings_scope(), None);
        assert_eq!(caller(Role::Admin, token(None)).recordings_scope(), None);
    }
}
