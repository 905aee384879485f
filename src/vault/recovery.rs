//! Delete's recovery window: a deleted credential can be restored until its purge is due, when
//! the purger (on every instance) destroys its versions; PurgeCredential does that at once.

use time::OffsetDateTime;

use super::{RequestContext, Vault, VaultError};
use crate::domain::{AuditAction, CredentialId, CredentialMetadata, Principal, Scope};
use crate::store::{PurgeReason, StoreError};

/// Credentials one purger pass takes at most; the next pass takes the rest.
const PURGE_BATCH: u32 = 100;

fn unknown(id: CredentialId) -> VaultError {
    VaultError::NotFound(format!("no credential {id}"))
}

impl Vault {
    /// The credential `id` in any state, for a caller with `scope` acting on it (another
    /// customer's is NOT_FOUND, and the refusal audited).
    pub(super) async fn any_credential_for(
        &self,
        ctx: &RequestContext,
        scope: Scope,
        id: CredentialId,
        attempt: &str,
    ) -> Result<CredentialMetadata, VaultError> {
        let found = self.store.find_credential(id).await?;
        let owner = found.as_ref().map(|c| c.customer_id);
        self.authorize_credential(ctx, scope, id, owner, attempt, || unknown(id)).await?;
        found.ok_or_else(|| unknown(id))
    }

    /// Undoes a delete within the recovery window.
    #[tracing::instrument(skip_all, fields(credential_id = %id))]
    pub async fn restore_credential(
        &self,
        ctx: RequestContext,
        id: CredentialId,
    ) -> Result<CredentialMetadata, VaultError> {
        self.ensure_ready()?;
        let credential =
            self.any_credential_for(&ctx, Scope::CredentialsWrite, id, "restore a credential").await?;
        let audit = ctx.audit(
            AuditAction::Restored,
            Some(credential.customer_id),
            Some(id),
            format!("restored {} credential {:?}", credential.provider, credential.name.as_str()),
        );
        let restored = self
            .store
            .restore_credential(id, credential.customer_id, audit, OffsetDateTime::now_utc())
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => unknown(id),
                other => other.into(),
            })?;
        tracing::info!("credential restored");
        Ok(restored)
    }

    /// Destroys every version of a credential now, deleted or not: past any recovery.
    #[tracing::instrument(skip_all, fields(credential_id = %id))]
    pub async fn purge_credential(
        &self,
        ctx: RequestContext,
        id: CredentialId,
    ) -> Result<CredentialMetadata, VaultError> {
        self.ensure_ready()?;
        let credential =
            self.any_credential_for(&ctx, Scope::CredentialsPurge, id, "purge a credential").await?;
        let audit = ctx.audit(
            AuditAction::Purged,
            Some(credential.customer_id),
            Some(id),
            format!(
                "purged {} credential {:?}: every version destroyed",
                credential.provider,
                credential.name.as_str()
            ),
        );
        let purged = self
            .store
            .purge_credential(
                id,
                credential.customer_id,
                PurgeReason::Requested,
                audit,
                OffsetDateTime::now_utc(),
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => unknown(id),
                other => other.into(),
            })?
            .expect("a requested purge purges or fails");
        self.served.remove(id);
        tracing::info!("credential purged");
        Ok(purged)
    }

    /// One pass of the purger: destroys the versions of the deleted credentials whose recovery
    /// window has passed. Safe on every instance at once: each credential is purged by one.
    /// Returns how many this pass purged.
    pub async fn purge_due(&self) -> Result<usize, VaultError> {
        self.ensure_ready()?;
        let now = OffsetDateTime::now_utc();
        let ctx = RequestContext { principal: Some(Principal::purger()), ..RequestContext::default() };
        let mut purged = 0;
        for credential in self.store.due_for_purge(now, PURGE_BATCH).await? {
            let audit = ctx.audit(
                AuditAction::Purged,
                Some(credential.customer_id),
                Some(credential.id),
                format!(
                    "purged {} credential {:?}: its recovery window ended",
                    credential.provider,
                    credential.name.as_str()
                ),
            );
            let done = self
                .store
                .purge_credential(credential.id, credential.customer_id, PurgeReason::Due(now), audit, now)
                .await?;
            if done.is_some() {
                self.served.remove(credential.id);
                purged += 1;
            }
        }
        if purged > 0 {
            tracing::info!(purged, "purged credentials whose recovery window ended");
        }
        Ok(purged)
    }
}
