//! The web console: one page and its script and style sheet, embedded in the binary and
//! served by the API itself (so `vox serve` and API Gateway serve it alike, with no hosting
//! of its own).
//!
//! The page holds no data and needs no credentials: everything it shows comes from the API's
//! own routes, called with the API key the user signs in with (kept in the tab's session
//! storage, sent as `Authorization: Bearer`), so the console can do nothing its caller's role
//! could not. Its Content-Security-Policy allows only its own script and style (no inline
//! code, no other origin) and, for uploads and playback, the recordings bucket's origin that
//! presigned URLs point at.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

use crate::AppState;
use crate::problem::Problem;

const SHELL: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/app.js");
const STYLE: &str = include_str!("../console/app.css");

/// One embedded file: its bytes, media type and entity tag.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: OnceLock<HeaderValue>,
}

impl Asset {
    const fn new(body: &'static str, content_type: &'static str) -> Self {
        Self {
            body,
            content_type,
            etag: OnceLock::new(),
        }
    }

    fn etag(&self) -> &HeaderValue {
        self.etag.get_or_init(|| {
            let digest = Sha256::digest(self.body.as_bytes());
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            HeaderValue::from_str(&format!("\"{hex}\""))
                .unwrap_or(HeaderValue::from_static("\"0\""))
        })
    }
}

static SHELL_ASSET: Asset = Asset::new(SHELL, "text/html; charset=utf-8");
static SCRIPT_ASSET: Asset = Asset::new(SCRIPT, "text/javascript; charset=utf-8");
static STYLE_ASSET: Asset = Asset::new(STYLE, "text/css; charset=utf-8");

/// The Content-Security-Policy of the console: its own script and style only; the API and
/// the recordings bucket (`media_origin`, where presigned uploads and playback go) for
/// connections and media.
pub fn content_security_policy(media_origin: Option<&str>) -> String {
    let media = media_origin.map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{media}; media-src 'self' blob:{media}; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// `GET /`: the console's page.
pub async fn shell(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve(&SHELL_ASSET, &headers, Some(&state))
}

/// `GET /console/{file}`: the console's script and style sheet.
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let asset = match file.as_str() {
        "app.js" => &SCRIPT_ASSET,
        "app.css" => &STYLE_ASSET,
        _ => {
            return Problem::not_found(format!("the console has no file {file:?}")).into_response();
        }
    };
    serve(asset, &headers, None)
}

fn serve(asset: &'static Asset, request: &HeaderMap, state: Option<&AppState>) -> Response {
    let etag = asset.etag();
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag.clone());
    // Revalidated on every load (a 304 when unchanged), so a new deployment shows at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Some(state) = state {
        let csp = content_security_policy(state.media_origin.as_deref());
        if let Ok(value) = HeaderValue::from_str(&csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, value);
        }
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_no_inline_code_and_only_the_bucket_beside_the_api() {
        let csp = content_security_policy(Some("http://127.0.0.1:5000"));
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(
            csp.contains("connect-src 'self' http://127.0.0.1:5000;"),
            "{csp}"
        );
        assert!(
            csp.contains("media-src 'self' blob: http://127.0.0.1:5000;"),
            "{csp}"
        );
        let without = content_security_policy(None);
        assert!(without.contains("connect-src 'self';"), "{without}");
    }

    #[test]
    fn the_page_loads_its_code_from_files_not_inline() {
        assert!(SHELL.contains(r#"src="/console/app.js""#));
        assert!(SHELL.contains(r#"href="/console/app.css""#));
        // No inline script or handler: the policy would block them.
        assert_eq!(SHELL.matches("<script").count(), 1);
        let handler = SHELL.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handler, "an inline event handler in the page");
        assert!(
            !SCRIPT.contains("innerHTML"),
            "the script builds nodes, never HTML strings"
        );
    }

    #[test]
    fn the_embedded_assets_stay_small() {
        let total = SHELL.len() + SCRIPT.len() + STYLE.len();
        assert!(total < 300 * 1024, "console assets are {total} bytes");
    }
}
