//! A provider's verdict on a credential: valid, invalid, or could not check.

use std::collections::BTreeMap;

/// What a provider said about a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    /// The provider accepted the credential.
    Valid,
    /// The provider rejected it (wrong, revoked, expired, or not allowed to do the cheapest read).
    Invalid,
    /// The provider could not be asked (timeout, 5xx, network, unreadable answer). Nothing is
    /// concluded about the credential: a provider outage never marks a credential invalid.
    Unreachable,
}

impl VerifyOutcome {
    /// Whether the answer is definite (changes the stored credential's verification state).
    pub fn is_definite(self) -> bool {
        !matches!(self, VerifyOutcome::Unreachable)
    }
}

/// The result of asking a provider. Built only from what the provider returned about the
/// identity and from fixed wording; never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub outcome: VerifyOutcome,
    /// Why, for people.
    pub reason: String,
    /// What the provider told about the identity (account id, ARN, client email...).
    pub identity: BTreeMap<String, String>,
    /// Findings a security reviewer would want to see.
    pub warnings: Vec<String>,
}

impl Verification {
    pub fn valid(
        reason: impl Into<String>,
        identity: BTreeMap<String, String>,
        warnings: Vec<String>,
    ) -> Self {
        Self { outcome: VerifyOutcome::Valid, reason: reason.into(), identity, warnings }
    }

    pub fn invalid(reason: impl Into<String>) -> Self {
        Self {
            outcome: VerifyOutcome::Invalid,
            reason: reason.into(),
            identity: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    pub fn unreachable(reason: impl Into<String>) -> Self {
        Self {
            outcome: VerifyOutcome::Unreachable,
            reason: reason.into(),
            identity: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }
}
