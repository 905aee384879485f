//! Verify: a stored credential (its current version) or a secret given inline, checked against
//! its provider; a definite answer on a stored one is recorded and audited. Scheduled
//! re-verification ([`Vault::claim_due_verifications`], [`Vault::reverify`]) records the same
//! way, as the `verifier`.

use std::time::Duration;

use time::OffsetDateTime;

use super::secrets::binding_of;
use super::{RequestContext, Vault, VaultError};
use crate::domain::{
    AuditAction, CredentialId, CredentialMetadata, CredentialSelector, Finding, Principal, Provider, Scope,
    SecretPayload, Verification, VerificationRecord, VerificationState, VerifyOutcome,
};
use crate::store::StoreError;

/// What Verify checks.
#[derive(Debug)]
pub enum VerifyTarget {
    /// A stored credential: its verification state changes on a definite answer.
    Stored(CredentialId),
    /// A secret given inline ("test connection" before saving): nothing is stored or audited.
    Inline(SecretPayload),
}

/// The answer to Verify.
#[derive(Debug)]
pub struct Verified {
    pub verification: Verification,
    /// The stored credential after verification; `None` for inline secrets.
    pub credential: Option<CredentialMetadata>,
}

/// How verification answers are judged and how often credentials are verified again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationPolicy {
    /// Invalid answers in a row after which a credential is failing (`CREDVAULT_FAILING_AFTER`).
    pub failing_after: u32,
    /// A current version older than this is a finding (`CREDVAULT_MAX_KEY_AGE`).
    pub max_key_age: Duration,
    /// Every credential is verified again this long after its last verification, give or take
    /// a tenth (`CREDVAULT_REVERIFY_INTERVAL`).
    pub interval: Duration,
}

impl Default for VerificationPolicy {
    fn default() -> Self {
        Self {
            failing_after: 3,
            max_key_age: Duration::from_secs(90 * 86_400),
            interval: Duration::from_secs(86_400),
        }
    }
}

impl Vault {
    /// How verification answers are judged (see [`VerificationPolicy`]).
    pub fn with_verification_policy(mut self, policy: VerificationPolicy) -> Self {
        self.verification = policy;
        self
    }

    /// Checks a credential against its provider. For a stored credential, a definite answer
    /// (valid or invalid) is recorded (see [`Vault::record_verification`]); an unreachable
    /// provider changes nothing.
    #[tracing::instrument(skip_all)]
    pub async fn verify_credential(
        &self,
        ctx: RequestContext,
        target: VerifyTarget,
    ) -> Result<Verified, VaultError> {
        self.ensure_ready()?;
        const ATTEMPT: &str = "verify a credential";
        let id = match target {
            VerifyTarget::Inline(secret) => {
                self.authorize(&ctx, Scope::CredentialsVerify, ctx.acting_for, None, ATTEMPT).await?;
                secret.validate("secret")?;
                let verification = self.check_with_provider(&secret).await;
                return Ok(Verified { verification, credential: None });
            }
            VerifyTarget::Stored(id) => id,
        };
        let missing = || VaultError::NotFound(format!("no active credential {id} (unknown, or deleted)"));
        let found = self.store.fetch_sealed(CredentialSelector::Id(id), None).await?;
        let owner = found.as_ref().map(|f| f.metadata.customer_id);
        self.authorize_credential(&ctx, Scope::CredentialsVerify, id, owner, ATTEMPT, missing).await?;
        self.verify_stored(&ctx, id, found.ok_or_else(missing)?).await
    }

    /// Verifies the current version of a credential read with [`crate::store::Store::fetch_sealed`]
    /// and records a definite answer.
    async fn verify_stored(
        &self,
        ctx: &RequestContext,
        id: CredentialId,
        found: crate::store::SealedCredential,
    ) -> Result<Verified, VaultError> {
        // Verification checks the secret Get hands out: the current version's.
        let Some((version, sealed)) = found.version.and_then(|v| Some(v.number).zip(v.sealed)) else {
            return Err(VaultError::FailedPrecondition(format!(
                "credential {id} has no enabled version to verify; add one or enable a disabled one"
            )));
        };
        let binding = binding_of(&found.metadata, version);
        let secret = self.open(ctx, &binding, &sealed).await?;
        let metadata = found.metadata;
        let verification = self.check_with_provider(&secret).await;
        drop(secret);
        if !verification.outcome.is_definite() {
            return Ok(Verified { verification, credential: Some(metadata) });
        }
        let credential = self.record_verification(ctx, &metadata, version, &verification).await?;
        Ok(Verified { verification, credential: Some(credential) })
    }

    /// Verification on write: checks `secret`, just written as `credential`'s current version,
    /// and records a definite answer. Never fails (the write is done): a record that cannot be
    /// made (the credential changed meanwhile) leaves the credential as written.
    pub(super) async fn verify_written(
        &self,
        ctx: &RequestContext,
        credential: CredentialMetadata,
        secret: &SecretPayload,
    ) -> (CredentialMetadata, Verification) {
        let verification = self.check_with_provider(secret).await;
        let Some(version) = credential.current_version.filter(|_| verification.outcome.is_definite()) else {
            return (credential, verification);
        };
        match self.record_verification(ctx, &credential, version, &verification).await {
            Ok(recorded) => (recorded, verification),
            Err(e) => {
                tracing::warn!(credential_id = %credential.id, error = %e, "the verification of a credential just written was not recorded");
                (credential, verification)
            }
        }
    }

    /// Records a definite answer with its `verified` or `failed` audit row: identity and
    /// findings (the provider's, and the key-age one) on the credential (an invalid answer keeps
    /// the provider's last ones), the streak of invalid answers counted; the answer that makes the credential failing is also audited as
    /// `verification_failed` and logged as a warning.
    async fn record_verification(
        &self,
        ctx: &RequestContext,
        metadata: &CredentialMetadata,
        version: crate::domain::VersionNumber,
        verification: &Verification,
    ) -> Result<CredentialMetadata, VaultError> {
        let id = metadata.id;
        let now = OffsetDateTime::now_utc();
        let valid = verification.outcome == VerifyOutcome::Valid;
        // An invalid answer tells nothing about the identity: what the provider last reported
        // about it (identity, findings) stays until the next valid one.
        let mut findings = if valid {
            verification.findings.clone()
        } else {
            metadata.verification.findings.iter().filter(|f| f.code != Finding::KEY_AGE).cloned().collect()
        };
        findings.extend(
            metadata.rotated_at.and_then(|at| Finding::key_age(at, now, self.verification.max_key_age)),
        );
        let record = VerificationRecord {
            version,
            valid,
            identity: verification.identity.clone(),
            findings,
            failing_after: self.verification.failing_after,
            now,
        };
        let audit = ctx.audit(
            if valid { AuditAction::Verified } else { AuditAction::Failed },
            Some(metadata.customer_id),
            Some(id),
            format!(
                "verification of {} credential {:?}: {}",
                metadata.provider,
                metadata.name.as_str(),
                verification.reason
            ),
        );
        let credential = self.store.record_verification(id, &record, audit).await.map_err(|e| match e {
            StoreError::NotFound(_) => VaultError::NotFound(format!(
                "credential {id} was deleted, or given a new current version, while being verified; verify it again"
            )),
            other => other.into(),
        })?;
        // Counting is atomic in the store: exactly one record sees the streak reach the limit.
        if !valid && credential.verification.failures == self.verification.failing_after {
            let details = format!(
                "{} credential {:?} failed verification {} times in a row (since {}): {}",
                credential.provider,
                credential.name.as_str(),
                credential.verification.failures,
                credential.verification.first_failed_at.map(crate::domain::rfc3339).unwrap_or_default(),
                verification.reason
            );
            tracing::warn!(
                credential_id = %id,
                customer_id = %credential.customer_id,
                provider = %credential.provider,
                failures = credential.verification.failures,
                "a credential is failing verification: {}",
                verification.reason
            );
            let alert =
                ctx.audit(AuditAction::VerificationFailed, Some(credential.customer_id), Some(id), details);
            self.store.append_audit(alert, now).await?;
        }
        Ok(credential)
    }

    /// Claims up to `limit` credentials whose scheduled verification is due, for this instance
    /// to verify with [`Vault::reverify`]; other instances will not claim them again before the
    /// next interval.
    pub async fn claim_due_verifications(
        &self,
        limit: u32,
    ) -> Result<Vec<(CredentialId, Provider)>, VaultError> {
        self.ensure_ready()?;
        let now = OffsetDateTime::now_utc();
        Ok(self.store.claim_due_verifications(now, self.verification.interval, limit).await?)
    }

    /// Verifies a claimed credential again, as the `verifier`. `None` when there was nothing to
    /// verify (deleted since, no enabled version, or its customer not in good standing).
    pub async fn reverify(&self, id: CredentialId) -> Result<Option<Verification>, VaultError> {
        self.ensure_ready()?;
        let ctx = RequestContext { principal: Some(Principal::verifier()), ..RequestContext::default() };
        let Some(found) = self.store.fetch_sealed(CredentialSelector::Id(id), None).await? else {
            return Ok(None);
        };
        // A suspended customer's secrets are not used, by Get or by the schedule.
        if !found.metadata.is_active
            || !found.customer_status.in_good_standing()
            || found.version.as_ref().is_none_or(|v| v.sealed.is_none())
        {
            return Ok(None);
        }
        match self.verify_stored(&ctx, id, found).await {
            Ok(verified) => Ok(Some(verified.verification)),
            // Deleted or changed while being verified: nothing left to record.
            Err(VaultError::NotFound(_) | VaultError::FailedPrecondition(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Puts claimed credentials off until `at` (see [`crate::store::Store::defer_verifications`]).
    pub async fn defer_verifications(
        &self,
        ids: &[CredentialId],
        at: OffsetDateTime,
    ) -> Result<(), VaultError> {
        Ok(self.store.defer_verifications(ids, at).await?)
    }

    /// Active credentials per verification state, for `/metrics`.
    pub async fn verification_state_counts(&self) -> Result<Vec<(VerificationState, i64)>, VaultError> {
        self.ensure_ready()?;
        Ok(self.store.verification_state_counts().await?)
    }

    /// Asks the provider, and counts the answer in `/metrics`.
    async fn check_with_provider(&self, secret: &SecretPayload) -> Verification {
        let verification = self.verifiers.verify(secret).await;
        let labels = [("provider", secret.provider().as_str()), ("outcome", verification.outcome.as_str())];
        metrics::counter!(crate::metrics::VERIFICATIONS, &labels).increment(1);
        verification
    }
}
