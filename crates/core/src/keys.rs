//! Named API keys with a scope. The secret itself is never stored or returned after creation:
//! only its SHA-256 digest (to look it up) and a short prefix (to recognise it in a list).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ValidationError;

/// What a key may do. `admin` may do everything; the others only their own routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Agents: start, steps, complete, scores, and reading their prompt assignment.
    Ingest,
    /// The dashboard and other readers: every read API.
    Read,
    /// Deleting, registering and promoting prompts, managing keys; and everything else.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    /// Whether a key of this scope may call a route that needs `required`.
    pub fn allows(self, required: Scope) -> bool {
        self == Scope::Admin || self == required
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest key name.
pub const MAX_KEY_NAME_LEN: usize = 64;

/// A stored key, as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub name: String,
    pub scope: Scope,
    /// The first characters of the secret, to tell keys apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What the store keeps of a new key.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub info: ApiKeyInfo,
    /// Lowercase hex SHA-256 of the secret.
    pub hash: String,
}

/// Body of `POST /api/keys`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// 1 to 64 characters of `[A-Za-z0-9_.:-]`, unique among keys not revoked.
    pub name: String,
    pub scope: Scope,
}

/// Answer of `POST /api/keys`: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    #[serde(flatten)]
    pub info: ApiKeyInfo,
    /// The secret: send it as `Authorization: Bearer <key>`. Not retrievable later.
    pub key: String,
}

pub fn validate_key_name(name: &str) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_KEY_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "name",
            format!("must be 1 to {MAX_KEY_NAME_LEN} characters of [A-Za-z0-9_.:-]"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_admin_allows_everything() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            assert!(Scope::Admin.allows(scope));
            assert!(scope.allows(scope));
        }
        assert!(!Scope::Ingest.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Ingest));
        assert!(!Scope::Read.allows(Scope::Admin));
        assert_eq!(Scope::parse("ADMIN"), None);
    }

    #[test]
    fn key_names() {
        assert!(validate_key_name("agent-1.prod:eu_west").is_ok());
        for bad in ["", "a b", "ä", &"x".repeat(65), "a\0"] {
            assert!(validate_key_name(bad).is_err(), "{bad:?}");
        }
    }
}
