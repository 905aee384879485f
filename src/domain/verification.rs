//! A provider's verdict on a credential (valid, invalid, or could not check), what a credential's
//! verifications have established so far, and the findings a security reviewer should see.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

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

    pub fn as_str(self) -> &'static str {
        match self {
            VerifyOutcome::Valid => "valid",
            VerifyOutcome::Invalid => "invalid",
            VerifyOutcome::Unreachable => "unreachable",
        }
    }
}

/// Something about a credential a security reviewer would want to see: a stable `code` for
/// programs and dashboards, and a `detail` for people. Built from metadata and fixed wording,
/// never from a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: String,
    pub detail: String,
}

impl Finding {
    /// AWS access keys of the account's root user.
    pub const AWS_ROOT_USER_KEY: &'static str = "aws_root_user_key";
    /// A Vultr key whose ACLs include user management.
    pub const VULTR_MANAGES_USERS: &'static str = "vultr_manages_users";
    /// A GCP service-account key created by a user (every exported JSON key is one).
    pub const GCP_USER_MANAGED_KEY: &'static str = "gcp_user_managed_key";
    /// An Azure subscription that is not in the Enabled state.
    pub const AZURE_SUBSCRIPTION_NOT_ENABLED: &'static str = "azure_subscription_not_enabled";
    /// The current version is older than the configured maximum key age.
    pub const KEY_AGE: &'static str = "key_age";

    pub fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Self { code: code.to_owned(), detail: detail.into() }
    }

    /// The key-age finding for a current version added at `rotated_at`, if it is older than
    /// `max_age` at `now`.
    pub fn key_age(rotated_at: OffsetDateTime, now: OffsetDateTime, max_age: Duration) -> Option<Self> {
        let age = now - rotated_at;
        if age <= max_age {
            return None;
        }
        Some(Self::new(
            Self::KEY_AGE,
            format!(
                "the current secret is {} days old, past the {}-day limit: rotate it at the provider and add it as a new version",
                age.whole_days(),
                max_age.as_secs() / 86_400
            ),
        ))
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
    pub findings: Vec<Finding>,
    /// For an unreachable provider that asked to be left alone (HTTP 429 `Retry-After`): for
    /// how long. Scheduled verification of that provider pauses as long.
    pub retry_after: Option<Duration>,
}

impl Verification {
    pub fn valid(
        reason: impl Into<String>,
        identity: BTreeMap<String, String>,
        findings: Vec<Finding>,
    ) -> Self {
        Self { outcome: VerifyOutcome::Valid, reason: reason.into(), identity, findings, retry_after: None }
    }

    pub fn invalid(reason: impl Into<String>) -> Self {
        Self {
            outcome: VerifyOutcome::Invalid,
            reason: reason.into(),
            identity: BTreeMap::new(),
            findings: Vec::new(),
            retry_after: None,
        }
    }

    pub fn unreachable(reason: impl Into<String>) -> Self {
        Self {
            outcome: VerifyOutcome::Unreachable,
            reason: reason.into(),
            identity: BTreeMap::new(),
            findings: Vec::new(),
            retry_after: None,
        }
    }
}

impl Verification {
    /// This unreachable answer, noting that the provider asked for `wait` before the next call.
    pub fn asking_to_wait(self, wait: Option<Duration>) -> Self {
        Self { retry_after: wait, ..self }
    }
}

/// What a credential's verifications have established: the identity and findings of the last
/// definite answer, and the current streak of invalid ones. Reset when a version is added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerificationStatus {
    /// What the provider reported about the identity on the last valid answer.
    pub identity: BTreeMap<String, String>,
    /// Findings of the last definite answer.
    pub findings: Vec<Finding>,
    /// Invalid answers in a row since the last valid one.
    pub failures: u32,
    /// When the current streak of invalid answers began.
    pub first_failed_at: Option<OffsetDateTime>,
    /// When the credential was marked failing: the streak's first failure, once the streak is
    /// long enough.
    pub failing_since: Option<OffsetDateTime>,
}

/// Where a credential stands with its provider, as the dashboard shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationState {
    /// Never verified (or not since its current version was added).
    Unverified,
    /// The last definite answer was valid.
    Verified,
    /// The last definite answer was invalid, not yet often enough in a row to be failing.
    Invalid,
    /// Invalid so many times in a row that someone should act.
    Failing,
}

impl VerificationState {
    pub const ALL: [VerificationState; 4] = [
        VerificationState::Unverified,
        VerificationState::Verified,
        VerificationState::Invalid,
        VerificationState::Failing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VerificationState::Unverified => "unverified",
            VerificationState::Verified => "verified",
            VerificationState::Invalid => "invalid",
            VerificationState::Failing => "failing",
        }
    }
}

/// What one definite answer changes about a credential.
#[derive(Debug, Clone)]
pub struct VerificationRecord {
    /// The version whose secret was verified: nothing is recorded once another is current.
    pub version: u32,
    pub valid: bool,
    pub identity: BTreeMap<String, String>,
    pub findings: Vec<Finding>,
    /// Invalid answers in a row after which the credential is failing.
    pub failing_after: u32,
    pub now: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(n * 86_400).unwrap()
    }

    #[test]
    fn key_age_counts_whole_days_past_the_limit() {
        let limit = Duration::from_secs(90 * 86_400);
        assert_eq!(Finding::key_age(day(1), day(91), limit), None);
        let finding = Finding::key_age(day(1), day(101) + Duration::from_secs(3600), limit).unwrap();
        assert_eq!(finding.code, Finding::KEY_AGE);
        assert!(finding.detail.contains("100 days old, past the 90-day limit"), "{}", finding.detail);
    }
}
