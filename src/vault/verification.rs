//! Verify: a stored credential (its current version) or a secret given inline, checked against
//! its provider; a definite answer on a stored one is recorded and audited.

use time::OffsetDateTime;

use super::secrets::binding_of;
use super::{RequestContext, Vault, VaultError};
use crate::domain::{
    AuditAction, CredentialId, CredentialMetadata, CredentialSelector, Scope, SecretPayload, Verification,
    VerifyOutcome,
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

impl Vault {
    /// Checks a credential against its provider. For a stored credential, a definite answer
    /// (valid or invalid) updates is_verified / last_verified_at with a `verified` or `failed`
    /// audit row carrying the reason; an unreachable provider changes nothing.
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
        let found = found.ok_or_else(missing)?;
        // Verification checks the secret Get hands out: the current version's.
        let Some((version, sealed)) = found.version.and_then(|v| Some(v.number).zip(v.sealed)) else {
            return Err(VaultError::FailedPrecondition(format!(
                "credential {id} has no enabled version to verify; add one or enable a disabled one"
            )));
        };
        let binding = binding_of(&found.metadata, version);
        let secret = self.open(&ctx, &binding, &sealed).await?;
        let metadata = found.metadata;
        let verification = self.check_with_provider(&secret).await;
        drop(secret);
        if !verification.outcome.is_definite() {
            return Ok(Verified { verification, credential: Some(metadata) });
        }
        let valid = verification.outcome == VerifyOutcome::Valid;
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
        let credential =
            self.store.record_verification(id, valid, audit, OffsetDateTime::now_utc()).await.map_err(
                |e| match e {
                    StoreError::NotFound(_) => {
                        VaultError::NotFound(format!("credential {id} was deleted while being verified"))
                    }
                    other => other.into(),
                },
            )?;
        Ok(Verified { verification, credential: Some(credential) })
    }

    /// Asks the provider, and counts the answer in `/metrics`.
    async fn check_with_provider(&self, secret: &SecretPayload) -> Verification {
        let verification = self.verifiers.verify(secret).await;
        let outcome = match verification.outcome {
            VerifyOutcome::Valid => "valid",
            VerifyOutcome::Invalid => "invalid",
            VerifyOutcome::Unreachable => "unreachable",
        };
        let labels = [("provider", secret.provider().as_str()), ("outcome", outcome)];
        metrics::counter!(crate::metrics::VERIFICATIONS, &labels).increment(1);
        verification
    }
}
