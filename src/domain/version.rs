//! A credential's versions: their states, the rule for changing a state, and the etag that
//! names one state of a credential for check-and-set.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

use super::{CredentialId, FieldViolation};

/// A version's number: 1 for the secret Store saved, then one more per AddVersion.
pub type VersionNumber = u32;

/// What may be done with a version's secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionState {
    /// Handed out by Get; the newest enabled version is the credential's current one.
    Enabled,
    /// Kept, but not handed out until enabled again.
    Disabled,
    /// Its ciphertext is gone; final.
    Destroyed,
}

impl VersionState {
    pub const ALL: [VersionState; 3] =
        [VersionState::Enabled, VersionState::Disabled, VersionState::Destroyed];

    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Enabled => "enabled",
            VersionState::Disabled => "disabled",
            VersionState::Destroyed => "destroyed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

impl fmt::Display for VersionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of one version's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionChange {
    Disable,
    Enable,
    Destroy,
}

impl VersionChange {
    /// The state the version ends in.
    pub fn target(self) -> VersionState {
        match self {
            VersionChange::Disable => VersionState::Disabled,
            VersionChange::Enable => VersionState::Enabled,
            VersionChange::Destroy => VersionState::Destroyed,
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            VersionChange::Disable => "disable",
            VersionChange::Enable => "enable",
            VersionChange::Destroy => "destroy",
        }
    }

    /// What applying this change to a version in state `from` does: `Ok(true)` changes it,
    /// `Ok(false)` leaves it as it is (it is in the target state already: nothing is written),
    /// `Err` refuses, in words for the caller.
    pub fn apply_to(self, version: VersionNumber, from: VersionState) -> Result<bool, String> {
        match (from, self) {
            (from, change) if from == change.target() => Ok(false),
            (VersionState::Destroyed, change) => Err(format!(
                "version {version} was destroyed and cannot be {}d; add a new version instead",
                change.verb()
            )),
            _ => Ok(true),
        }
    }
}

/// A version as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionMetadata {
    pub credential_id: CredentialId,
    pub version: VersionNumber,
    pub state: VersionState,
    /// The token that added it; `None` for versions stored before versions existed.
    pub created_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub destroyed_at: Option<OffsetDateTime>,
}

/// One state of a credential's metadata and versions: it changes with every change of either,
/// not with uses or verifications. Clients pass it back unchanged to make a change conditional
/// on nothing having changed since they read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Etag(i64);

impl Etag {
    /// The etag of the stored revision counter.
    pub fn from_revision(revision: i64) -> Self {
        Self(revision)
    }

    pub fn revision(self) -> i64 {
        self.0
    }

    /// Parses a client's etag; empty means none (the change is unconditional).
    pub fn parse_optional(value: &str, field: &str) -> Result<Option<Self>, FieldViolation> {
        if value.is_empty() {
            return Ok(None);
        }
        let bad =
            || FieldViolation::new(field, "is not an etag credvault returned; read the credential again");
        let digits = value.strip_prefix('r').ok_or_else(bad)?;
        if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        digits.parse().map(|n| Some(Self(n))).map_err(|_| bad())
    }
}

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Where a page of ListVersions ended: the last version listed (versions go newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionCursor(pub VersionNumber);

impl VersionCursor {
    const PREFIX: &'static str = "v1:";

    /// The opaque token handed to clients.
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}{}", Self::PREFIX, self.0))
    }

    /// Parses a client's token; empty means the first page.
    pub fn decode_optional(token: &str, field: &str) -> Result<Option<Self>, FieldViolation> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || {
            FieldViolation::new(
                field,
                "is not a page token returned by ListVersions; start again with an empty one",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
        let number = text.strip_prefix(Self::PREFIX).and_then(|n| n.parse().ok()).ok_or_else(bad)?;
        Ok(Some(Self(number)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for state in VersionState::ALL {
            assert_eq!(VersionState::parse(state.as_str()), Some(state));
        }
        assert_eq!(VersionState::parse("ENABLED"), None);
    }

    #[test]
    fn destroyed_is_final_and_repeating_a_change_writes_nothing() {
        use VersionChange::*;
        use VersionState::*;
        assert_eq!(Disable.apply_to(1, Enabled), Ok(true));
        assert_eq!(Enable.apply_to(1, Disabled), Ok(true));
        assert_eq!(Destroy.apply_to(1, Disabled), Ok(true));
        assert_eq!(Destroy.apply_to(1, Enabled), Ok(true));
        assert_eq!(Disable.apply_to(1, Disabled), Ok(false));
        assert_eq!(Enable.apply_to(1, Enabled), Ok(false));
        assert_eq!(Destroy.apply_to(1, Destroyed), Ok(false));
        let refused = Enable.apply_to(3, Destroyed).unwrap_err();
        assert!(refused.contains("version 3 was destroyed and cannot be enabled"), "{refused}");
        assert!(Disable.apply_to(3, Destroyed).is_err());
    }

    #[test]
    fn etags_round_trip_and_anything_else_is_refused() {
        let etag = Etag::from_revision(42);
        assert_eq!(Etag::parse_optional(&etag.to_string(), "etag").unwrap(), Some(etag));
        assert_eq!(Etag::parse_optional("", "etag").unwrap(), None);
        for bad in ["42", "r", "r-1", "rx", "r1 ", "W/\"r1\"", "r1234567890123456789"] {
            let err = Etag::parse_optional(bad, "etag").unwrap_err();
            assert!(err.to_string().contains("is not an etag credvault returned"), "{bad}: {err}");
        }
    }

    #[test]
    fn version_page_tokens_round_trip_and_others_are_refused() {
        let token = VersionCursor(7).encode();
        assert_eq!(VersionCursor::decode_optional(&token, "page_token").unwrap(), Some(VersionCursor(7)));
        assert_eq!(VersionCursor::decode_optional("", "page_token").unwrap(), None);
        for bad in ["7", "djE6", "djE6eA", "!!"] {
            assert!(VersionCursor::decode_optional(bad, "page_token").is_err(), "{bad}");
        }
    }
}
