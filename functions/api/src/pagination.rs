//! Keyset pagination with opaque cursors: a cursor is the last id of a page, tagged with the
//! listing it belongs to and base64url-encoded, so clients treat it as a token and the
//! encoding can change without breaking them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::Problem;

/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: u16 = 50;
/// The largest `limit` accepted.
pub const MAX_LIMIT: u16 = 200;

/// One page of a listing, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The cursor after `id` in the listing `listing`.
pub fn encode(listing: &str, id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{listing}:{id}"))
}

/// The id a cursor of `listing` stands for; a cursor of another listing, or anything
/// malformed, is a 400 naming `cursor`.
pub fn decode(listing: &str, cursor: Option<&str>) -> Result<Option<i64>, Problem> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let invalid = || Problem::invalid("cursor", "not a cursor this listing returned");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (tag, id) = text.split_once(':').ok_or_else(invalid)?;
    if tag != listing {
        return Err(invalid());
    }
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .map(Some)
        .ok_or_else(invalid)
}

/// The page size asked for, checked.
pub fn limit(limit: Option<u16>) -> Result<u16, Problem> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(Problem::invalid(
            "limit",
            format!("{n} is not between 1 and {MAX_LIMIT}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_only_in_its_own_listing() {
        let cursor = encode("audits", 42);
        assert_eq!(decode("audits", Some(&cursor)).unwrap(), Some(42));
        assert_eq!(
            decode("recordings", Some(&cursor))
                .unwrap_err()
                .field
                .as_deref(),
            Some("cursor")
        );
        assert!(decode("audits", Some("not base64!")).is_err());
        assert_eq!(decode("audits", None).unwrap(), None);
    }
}
