//! The handlers, one module per resource. Each checks the caller's permission first, then
//! validates, then delegates to `common::db` (or the presigner) and maps the result onto the
//! documented response types.

pub mod audits;
pub mod health;
pub mod keys;
pub mod recordings;
pub mod reference;
pub mod search;
pub mod transcriptions;

use axum::http::Uri;

use crate::problem::{Kind, Problem};

/// Unknown routes.
pub async fn not_found(uri: Uri) -> Problem {
    Problem::not_found(format!("there is no resource at {}", uri.path()))
}

/// Known routes asked with another method.
pub async fn method_not_allowed() -> Problem {
    Problem::new(
        Kind::MethodNotAllowed,
        "this resource does not support that method",
    )
}

/// A text value that must hold something, and not too much.
pub(crate) fn required_text(field: &str, value: &str, max_chars: usize) -> Result<(), Problem> {
    if value.trim().is_empty() {
        return Err(Problem::invalid(field, "must not be blank"));
    }
    if value.chars().count() > max_chars {
        return Err(Problem::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if value.contains('\0') {
        return Err(Problem::invalid(field, "must not contain a NUL character"));
    }
    Ok(())
}
