//! API keys: 32 random bytes from the operating system, base64url-encoded behind a visible
//! `vox_` prefix. Only the key's SHA-256 is stored; the key itself is shown once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::db::GenericClient;
use common::db::api_key::{self, ApiKeyRow};

use crate::auth::{Role, key_digest};
use crate::problem::Problem;

/// What every key starts with, so that a key is recognisable in a config file or a leak scan.
pub const KEY_PREFIX: &str = "vox_";

/// How many characters of a key are kept (and shown) to recognise it: `vox_` and 8 more.
const SHOWN_CHARS: usize = KEY_PREFIX.len() + 8;

/// A freshly generated key.
#[derive(Debug)]
pub struct NewKey {
    /// The secret; show it once.
    pub key: String,
    /// Its first characters, stored and listed.
    pub prefix: String,
    pub digest: [u8; 32],
}

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the operating system's random source failed")]
    Random(#[source] getrandom::Error),
    #[error(transparent)]
    Db(#[from] common::Error),
}

impl From<KeyError> for Problem {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Db(e) => e.into(),
            random @ KeyError::Random(_) => Problem::internal(&random),
        }
    }
}

/// A new random key.
pub fn generate() -> Result<NewKey, KeyError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(KeyError::Random)?;
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let prefix = key.chars().take(SHOWN_CHARS).collect();
    let digest = key_digest(&key);
    Ok(NewKey {
        key,
        prefix,
        digest,
    })
}

/// Generates and stores a key named `name` with `role`; returns the stored row and the key,
/// which exists nowhere else from then on.
pub async fn create(
    client: &impl GenericClient,
    name: &str,
    role: Role,
) -> Result<(ApiKeyRow, String), KeyError> {
    let new = generate()?;
    let row = api_key::create(client, name, &new.prefix, &new.digest, role.as_str()).await?;
    Ok((row, new.key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_stored_by_digest() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with("vox_"));
        // 32 bytes in unpadded base64url are 43 characters.
        assert_eq!(a.key.len(), 4 + 43);
        assert!(a.key.starts_with(&a.prefix));
        assert_eq!(a.prefix.len(), 12);
        assert_eq!(a.digest, key_digest(&a.key));
    }
}
