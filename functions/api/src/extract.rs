//! Request extractors whose rejections are problems naming the field at fault (axum's own
//! answer in plain text and, for query strings, without the field).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::{Kind, Problem};

/// A JSON body (`Content-Type: application/json`), within the body limit.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(Problem::new(
                Kind::UnsupportedMediaType,
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(_) => Problem::new(
                Kind::PayloadTooLarge,
                format!(
                    "the body is over the {} byte limit (or could not be read)",
                    crate::MAX_BODY_BYTES
                ),
            ),
            other => Problem::new(Kind::MalformedBody, other.body_text()),
        })?;
        if let Some(field) = nul_in_json(&bytes) {
            return Err(Problem::invalid(field, "contains a NUL character (U+0000)"));
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = field_of(e.path());
            let inner = e.into_inner();
            let field = named_field(&inner.to_string(), path.as_deref()).or(path);
            let detail = format!("the body is not valid: {inner}");
            // Broken JSON is malformed wherever it broke; only a well-formed value of the
            // wrong shape names a field.
            let data = inner.classify() == serde_json::error::Category::Data;
            match field.filter(|_| data) {
                Some(field) => Problem {
                    kind: Kind::Validation,
                    detail,
                    field: Some(field),
                },
                None => Problem::new(Kind::MalformedBody, detail),
            }
        })?;
        de.end()
            .map_err(|e| Problem::new(Kind::MalformedBody, format!("trailing data: {e}")))?;
        Ok(JsonBody(value))
    }
}

/// A query string deserialized into `T`; a bad value is a 400 naming its parameter.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        let query = parts.uri.query().unwrap_or_default();
        // PostgreSQL text cannot hold U+0000: a 400 naming the parameter, not a failed query.
        if let Some((name, _)) =
            form_urlencoded::parse(query.as_bytes()).find(|(_, v)| v.contains('\0'))
        {
            return Err(Problem::invalid(
                name.into_owned(),
                "contains a NUL character (U+0000)",
            ));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(QueryParams)
            .map_err(|e| {
                let field = field_of(e.path()).unwrap_or_else(|| "query".to_owned());
                let inner = e.into_inner().to_string();
                let field = named_field(&inner, None).unwrap_or(field);
                Problem::invalid(field, inner)
            })
    }
}

/// A numeric id in the path (`/audits/{id}`); anything else is a 400 naming `id`.
#[derive(Debug, Clone, Copy)]
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| Problem::invalid("id", e.body_text()))?;
        match raw.parse::<i64>() {
            Ok(id) if id > 0 => Ok(Id(id)),
            _ => Err(Problem::invalid(
                "id",
                format!("{raw:?} is not a positive whole number"),
            )),
        }
    }
}

/// Where a JSON body holds a string with U+0000 (which PostgreSQL text cannot store): the
/// path of the first such value or key (`filters.city`, `items[2]`), `body` when the body does
/// not parse. Cheap when there is none: only the bytes are scanned for the `\u0000` escape.
fn nul_in_json(bytes: &[u8]) -> Option<String> {
    let escaped = bytes.windows(6).enumerate().any(|(i, w)| {
        w[0] == b'\\'
            && w[1] == b'u'
            && &w[2..] == b"0000"
            && bytes[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 0
    });
    if !escaped {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    fn walk(v: &serde_json::Value, at: &str) -> Option<String> {
        let join = |key: &str| {
            if at.is_empty() {
                key.to_owned()
            } else {
                format!("{at}.{key}")
            }
        };
        match v {
            serde_json::Value::String(s) if s.contains('\0') => Some(if at.is_empty() {
                "body".into()
            } else {
                at.into()
            }),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| walk(item, &format!("{at}[{i}]"))),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, item)| {
                if k.contains('\0') {
                    Some(join(&k.replace('\0', "\\u0000")))
                } else {
                    walk(item, &join(k))
                }
            }),
            _ => None,
        }
    }
    walk(&value, "")
}

fn field_of(path: &serde_path_to_error::Path) -> Option<String> {
    let text = path.to_string();
    (text != "." && !text.is_empty()).then_some(text)
}

/// serde names a missing field in its message, not in the path (which ends at the object
/// that lacks it): `parent.name`.
fn named_field(message: &str, parent: Option<&str>) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    let (name, _) = rest.split_once('`')?;
    Some(match parent {
        Some(parent) => format!("{parent}.{name}"),
        None => name.to_owned(),
    })
}
