//! Bearer tokens: issuing them (random, shown once, stored as a hash), reading the
//! `authorization` header, and checking a presented token against its stored record, with a
//! short-lived cache so the check costs no database round trip on the hot path.
//!
//! A token reads `cvt_` + base64url(16-byte token id ‖ 32 random secret bytes). The id finds
//! the record; the SHA-256 of the secret is compared with the stored hash in constant time. A
//! 256-bit random secret needs no slow password hash: there is nothing to guess.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::domain::{CustomerBinding, Principal, Scopes, TokenId, TokenName, TokenRecord};
use crate::store::{Store, StoreError};

const PREFIX: &str = "cvt_";
const SECRET_BYTES: usize = 32;

/// How long a checked token record is trusted before it is read again: the bound within which a
/// revocation made elsewhere (the CLI, another instance) takes effect. Expiry is checked on
/// every call regardless.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5);

/// A new token: the record to store and the token text, which is shown once and never stored.
pub struct IssuedToken {
    pub record: TokenRecord,
    pub token: SecretString,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken").field("record", &self.record).field("token", &"[REDACTED]").finish()
    }
}

/// Makes a new random token.
pub fn issue(
    name: TokenName,
    scopes: Scopes,
    customer: CustomerBinding,
    expires_at: Option<OffsetDateTime>,
) -> Result<IssuedToken, aws_lc_rs::error::Unspecified> {
    let id = TokenId::new_random();
    let mut raw = Zeroizing::new([0u8; 16 + SECRET_BYTES]);
    raw[..16].copy_from_slice(id.as_bytes());
    aws_lc_rs::rand::fill(&mut raw[16..])?;
    let secret_hash = hash(&raw[16..]);
    let token = SecretString::from(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw.as_slice())));
    let record = TokenRecord {
        id,
        name,
        scopes,
        customer,
        secret_hash,
        created_at: OffsetDateTime::now_utc(),
        expires_at,
        revoked_at: None,
    };
    Ok(IssuedToken { record, token })
}

fn hash(secret: &[u8]) -> [u8; 32] {
    digest::digest(&digest::SHA256, secret).as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// A token as presented: its id and the secret's hash (the secret itself is wiped at once).
struct Presented {
    id: TokenId,
    secret_hash: [u8; 32],
}

/// Reads `Bearer <token>`; `None` if it is not one of our tokens.
fn parse(authorization: &str) -> Option<Presented> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let encoded = token.trim().strip_prefix(PREFIX)?;
    let raw = Zeroizing::new(URL_SAFE_NO_PAD.decode(encoded).ok()?);
    if raw.len() != 16 + SECRET_BYTES {
        return None;
    }
    let id = TokenId::from_uuid(uuid::Uuid::from_slice(&raw[..16]).ok()?);
    Some(Presented { id, secret_hash: hash(&raw[16..]) })
}

/// Why a caller is not authenticated. Messages say what to fix and never echo the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "missing credentials: send `authorization: Bearer <token>` (create one with `credvault token create`)"
    )]
    Missing,
    #[error("the authorization header is not `Bearer <token>` with a credvault token (cvt_...)")]
    Malformed,
    #[error("the bearer token is not valid")]
    Invalid,
    #[error("the bearer token is no longer valid: {0}")]
    NotUsable(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Cached {
    record: Arc<TokenRecord>,
    read_at: Instant,
}

/// Checks presented tokens against their records.
pub struct Authenticator {
    store: Arc<dyn Store>,
    ttl: Duration,
    cache: RwLock<HashMap<TokenId, Cached>>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, ttl: Duration) -> Self {
        Self { store, ttl, cache: RwLock::new(HashMap::new()) }
    }

    /// The caller named by an `authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let presented = parse(authorization.ok_or(AuthError::Missing)?).ok_or(AuthError::Malformed)?;
        let record = match self.cached(presented.id) {
            Some(record) => record,
            None => self.load(presented.id).await?,
        };
        if verify_slices_are_equal(&record.secret_hash, &presented.secret_hash).is_err() {
            return Err(AuthError::Invalid);
        }
        record.usable_at(OffsetDateTime::now_utc()).map_err(AuthError::NotUsable)?;
        Ok(Principal {
            token_id: record.id,
            name: record.name.clone(),
            scopes: record.scopes,
            customer: record.customer,
        })
    }

    fn cached(&self, id: TokenId) -> Option<Arc<TokenRecord>> {
        let cache = self.cache.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(&id).filter(|c| c.read_at.elapsed() < self.ttl).map(|c| c.record.clone())
    }

    async fn load(&self, id: TokenId) -> Result<Arc<TokenRecord>, AuthError> {
        // Unknown ids are not cached: a token created a moment ago must work at once.
        let record = Arc::new(self.store.find_token(id).await?.ok_or(AuthError::Invalid)?);
        let mut cache = self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.insert(id, Cached { record: record.clone(), read_at: Instant::now() });
        Ok(record)
    }

    /// Forgets a token at once (a revocation made through this instance).
    pub fn forget(&self, id: TokenId) {
        self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn issued() -> IssuedToken {
        issue(TokenName::parse("t", "name").unwrap(), Scopes::all(), CustomerBinding::All, None).unwrap()
    }

    #[test]
    fn an_issued_token_parses_back_to_its_id_and_hash() {
        let issued = issued();
        let text = issued.token.expose_secret();
        assert!(text.starts_with("cvt_") && text.len() == 4 + 64, "{text}");
        let presented = parse(&format!("Bearer {text}")).unwrap();
        assert_eq!(presented.id, issued.record.id);
        assert_eq!(presented.secret_hash, issued.record.secret_hash);
        assert!(parse(&format!("bearer   {text}")).is_some(), "scheme is case-insensitive");
        assert!(!format!("{issued:?}").contains(text), "Debug redacts the token");
    }

    #[test]
    fn anything_else_is_malformed() {
        let text = issued().token.expose_secret().to_owned();
        for bad in [
            text.clone(),
            format!("Basic {text}"),
            format!("Bearer {}", &text[4..]),
            format!("Bearer {}", &text[..40]),
            "Bearer cvt_!!!!".to_owned(),
            String::new(),
        ] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
    }
}
