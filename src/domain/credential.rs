//! A credential's metadata and the validated values a request names it by: its name, type,
//! idempotency key, the List filter and its page cursor, and the per-provider summary.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

use super::{
    CredentialId, CustomerId, Etag, FieldViolation, Permission, Provider, VerificationState,
    VerificationStatus, VersionNumber,
};

/// The customer's name for a credential: 1 to 255 characters, no control characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialName(String);

impl CredentialName {
    pub const MAX_CHARS: usize = 255;

    pub fn parse(value: &str, field: &str) -> Result<Self, FieldViolation> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(FieldViolation::new(field, "is required (1 to 255 characters)"));
        }
        let chars = trimmed.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(FieldViolation::new(
                field,
                format!("is {chars} characters long; at most {} are allowed", Self::MAX_CHARS),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(FieldViolation::new(field, "must not contain control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// A name read back from storage, where it was validated on the way in.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The kind of secret (the seed's `credential_type`): 1 to 50 characters of `[a-z0-9_]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialType(String);

impl CredentialType {
    /// Parses the request's value; empty means the provider's usual kind.
    pub fn parse_or_default(value: &str, provider: Provider, field: &str) -> Result<Self, FieldViolation> {
        if value.is_empty() {
            return Ok(Self(provider.default_credential_type().to_owned()));
        }
        let ok = value.len() <= 50
            && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(FieldViolation::new(
                field,
                "must be 1 to 50 characters of a-z, 0-9 and _ (e.g. api_key), or empty for the provider's default",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client-chosen key that makes a retried Store safe: 1 to 255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses the request's value; empty means the request carries none.
    pub fn parse_optional(value: &str, field: &str) -> Result<Option<Self>, FieldViolation> {
        if value.is_empty() {
            return Ok(None);
        }
        if value.len() > 255 || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FieldViolation::new(
                field,
                "must be 1 to 255 printable ASCII characters without spaces (a UUID works well)",
            ));
        }
        Ok(Some(Self(value.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Everything about a credential except its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialMetadata {
    pub id: CredentialId,
    pub customer_id: CustomerId,
    pub provider: Provider,
    pub name: CredentialName,
    pub credential_type: CredentialType,
    pub permissions: Permission,
    pub is_active: bool,
    pub is_verified: bool,
    pub is_default: bool,
    pub last_verified_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub usage_count: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// The newest enabled version, the one Get hands out; `None` when no version is enabled.
    pub current_version: Option<VersionNumber>,
    /// How many versions the credential has had (the newest one's number).
    pub latest_version: VersionNumber,
    /// When the current version was added.
    pub rotated_at: Option<OffsetDateTime>,
    pub etag: Etag,
    /// For a deleted credential: when the purger destroys its versions (until then it can be
    /// restored).
    pub purge_at: Option<OffsetDateTime>,
    /// When every version was destroyed; a purged credential cannot be restored.
    pub purged_at: Option<OffsetDateTime>,
    /// What verifying the current version has established.
    pub verification: VerificationStatus,
}

impl CredentialMetadata {
    /// Where the credential stands with its provider.
    pub fn verification_state(&self) -> VerificationState {
        if self.verification.failing_since.is_some() {
            VerificationState::Failing
        } else if self.is_verified {
            VerificationState::Verified
        } else if self.last_verified_at.is_some() {
            VerificationState::Invalid
        } else {
            VerificationState::Unverified
        }
    }

    /// Whether the last verification found something a security reviewer should see.
    pub fn is_risky(&self) -> bool {
        !self.verification.findings.is_empty()
    }
}

/// Which credentials a List returns.
#[derive(Debug, Clone)]
pub struct ListFilter {
    pub customer_id: CustomerId,
    pub provider: Option<Provider>,
    pub include_inactive: bool,
    /// 1 to [`ListFilter::MAX_PAGE_SIZE`].
    pub page_size: u32,
    /// Where the previous page ended; `None` for the first page.
    pub after: Option<PageCursor>,
}

impl ListFilter {
    pub const DEFAULT_PAGE_SIZE: u32 = 50;
    pub const MAX_PAGE_SIZE: u32 = 500;

    /// Applies the documented rule: 0 means the default, larger than the maximum is lowered.
    pub fn page_size_from_request(requested: i32, field: &str) -> Result<u32, FieldViolation> {
        match requested {
            n if n < 0 => Err(FieldViolation::new(field, "must not be negative (0 means the default, 50)")),
            0 => Ok(Self::DEFAULT_PAGE_SIZE),
            n => Ok(n.unsigned_abs().min(Self::MAX_PAGE_SIZE)),
        }
    }
}

/// A position in the newest-first order of a customer's credentials: the last item of a page.
/// Credentials are ordered by creation time, then id, both descending, so a cursor stays valid
/// while credentials are added or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    pub created_at_micros: i64,
    pub id: CredentialId,
}

impl PageCursor {
    const PREFIX: &'static str = "c1";

    pub fn after(credential: &CredentialMetadata) -> Self {
        Self { created_at_micros: unix_micros(credential.created_at), id: credential.id }
    }

    /// The opaque token handed to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}:{}", Self::PREFIX, self.created_at_micros, self.id))
    }

    pub fn decode(token: &str, field: &str) -> Result<Self, FieldViolation> {
        let bad = || {
            FieldViolation::new(
                field,
                "is not a page token returned by List; start again with an empty page_token",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = text.splitn(3, ':');
        let (Some(Self::PREFIX), Some(ts), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        Ok(Self {
            created_at_micros: ts.parse().map_err(|_| bad())?,
            id: CredentialId::parse(id, field).map_err(|_| bad())?,
        })
    }
}

/// A time as RFC 3339 text (`2026-12-07T01:32:50.5Z`), as answers and messages show it.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("every OffsetDateTime formats as RFC 3339")
}

/// Microseconds since the Unix epoch: the precision timestamps are stored with.
pub fn unix_micros(t: OffsetDateTime) -> i64 {
    // Every OffsetDateTime (years -9999..=9999) fits: i64 microseconds span ±292,000 years.
    i64::try_from(t.unix_timestamp_nanos() / 1_000).expect("OffsetDateTime's range fits i64 microseconds")
}

/// Per-provider counts of one customer's credentials (the seed's summary), with the newest few
/// credentials of each provider.
#[derive(Debug, Clone)]
pub struct Summary {
    pub customer_id: CustomerId,
    pub total_credentials: i64,
    /// In provider order.
    pub providers: Vec<ProviderSummary>,
}

impl Summary {
    /// How many credentials of each provider a summary lists unless asked otherwise.
    pub const DEFAULT_CREDENTIALS_PER_PROVIDER: u32 = 100;

    /// Applies the documented rule to a requested number of credentials per provider: 0 means
    /// the default (100), more than List's largest page (500) is lowered to it.
    pub fn credentials_per_provider(requested: i32, field: &str) -> Result<u32, FieldViolation> {
        match requested {
            n if n < 0 => Err(FieldViolation::new(field, "must not be negative (0 means the default, 100)")),
            0 => Ok(Self::DEFAULT_CREDENTIALS_PER_PROVIDER),
            n => Ok(n.unsigned_abs().min(ListFilter::MAX_PAGE_SIZE)),
        }
    }
}

/// One provider's part of a [`Summary`].
#[derive(Debug, Clone)]
pub struct ProviderSummary {
    pub counts: ProviderCounts,
    /// The provider's newest credentials, deleted ones included (the first page of a List of
    /// them).
    pub credentials: Vec<CredentialMetadata>,
    /// Where that List's next page starts, when the provider has more credentials than listed.
    pub next: Option<PageCursor>,
}

/// How many of one customer's credentials of one provider are in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderCounts {
    pub provider: Provider,
    /// All of them, deleted ones included.
    pub total: i64,
    /// Not deleted.
    pub active: i64,
    /// Active, and their last verification succeeded.
    pub verified: i64,
    /// Active credentials with no enabled version (nothing Get can hand out).
    pub disabled: i64,
    /// Deleted credentials not purged yet: restorable until their purge is due.
    pub pending_deletion: i64,
    /// Active credentials marked failing (invalid several times in a row).
    pub failing: i64,
    /// Active credentials whose last verification had findings.
    pub risky: i64,
}

impl ProviderCounts {
    /// Counts one credential of this provider (the rule the store's count runs in SQL).
    pub fn add(&mut self, credential: &CredentialMetadata) {
        let active = credential.is_active;
        self.total += 1;
        self.active += i64::from(active);
        self.verified += i64::from(active && credential.is_verified);
        self.disabled += i64::from(active && credential.current_version.is_none());
        self.pending_deletion += i64::from(!active && credential.purged_at.is_none());
        self.failing += i64::from(active && credential.verification_state() == VerificationState::Failing);
        self.risky += i64::from(active && credential.is_risky());
    }

    /// No credentials of `provider` yet.
    pub fn zero(provider: Provider) -> Self {
        Self {
            provider,
            total: 0,
            active: 0,
            verified: 0,
            disabled: 0,
            pending_deletion: 0,
            failing: 0,
            risky: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(CredentialName::parse("  Production Vultr ", "n").unwrap().as_str(), "Production Vultr");
        assert!(CredentialName::parse("   ", "n").unwrap_err().description.contains("required"));
        assert!(CredentialName::parse(&"é".repeat(255), "n").is_ok());
        let err = CredentialName::parse(&"x".repeat(256), "credential_name").unwrap_err();
        assert_eq!(err.field, "credential_name");
        assert!(err.description.contains("256 characters"));
        assert!(CredentialName::parse("a\nb", "n").is_err());
    }

    #[test]
    fn credential_type_defaults_per_provider() {
        assert_eq!(
            CredentialType::parse_or_default("", Provider::Gcp, "t").unwrap().as_str(),
            "service_account"
        );
        assert_eq!(
            CredentialType::parse_or_default("api_key", Provider::Vultr, "t").unwrap().as_str(),
            "api_key"
        );
        assert!(CredentialType::parse_or_default("Api Key", Provider::Vultr, "t").is_err());
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let cursor = PageCursor { created_at_micros: 1_700_000_000_123_456, id: CredentialId::new_random() };
        assert_eq!(PageCursor::decode(&cursor.encode(), "page_token").unwrap(), cursor);
        for bad in ["", "!!", "YWJj", &URL_SAFE_NO_PAD.encode("c1:x:y")] {
            let err = PageCursor::decode(bad, "page_token").unwrap_err();
            assert_eq!(err.field, "page_token");
        }
    }

    #[test]
    fn page_size_rule() {
        assert_eq!(ListFilter::page_size_from_request(0, "p").unwrap(), 50);
        assert_eq!(ListFilter::page_size_from_request(7, "p").unwrap(), 7);
        assert_eq!(ListFilter::page_size_from_request(10_000, "p").unwrap(), 500);
        assert!(ListFilter::page_size_from_request(-1, "p").is_err());
    }

    #[test]
    fn credentials_per_provider_rule() {
        assert_eq!(Summary::credentials_per_provider(0, "c").unwrap(), 100);
        assert_eq!(Summary::credentials_per_provider(3, "c").unwrap(), 3);
        assert_eq!(Summary::credentials_per_provider(100_000, "c").unwrap(), 500);
        assert_eq!(Summary::credentials_per_provider(-1, "c").unwrap_err().field, "c");
    }

    #[test]
    fn idempotency_keys_are_optional_and_printable() {
        assert_eq!(IdempotencyKey::parse_optional("", "k").unwrap(), None);
        assert!(IdempotencyKey::parse_optional("retry-1", "k").unwrap().is_some());
        assert!(IdempotencyKey::parse_optional("has space", "k").is_err());
        assert!(IdempotencyKey::parse_optional(&"k".repeat(256), "k").is_err());
    }
}
