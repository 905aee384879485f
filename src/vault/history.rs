//! A credential's history for its owner's dashboard: its audit events (who fetched it, from
//! where, and every change), tenant-checked like every act on a credential.

use super::customers::page_end;
use super::{Listed, RequestContext, Vault, VaultError};
use crate::domain::{AuditEvent, AuditFilter, CredentialId, Cursor, Scope};

impl Vault {
    /// The audit events of credential `filter.credential_id` (active, deleted or purged), newest
    /// first. Another customer's credential is NOT_FOUND, and the attempt audited.
    #[tracing::instrument(skip_all, fields(credential_id = %id))]
    pub async fn credential_events(
        &self,
        ctx: RequestContext,
        id: CredentialId,
        mut filter: AuditFilter,
    ) -> Result<Listed<AuditEvent>, VaultError> {
        self.ensure_ready()?;
        let missing = || VaultError::NotFound(format!("no credential {id}"));
        let found = self.store.find_credential(id).await?;
        let owner = found.as_ref().map(|c| c.customer_id);
        let owner = self
            .authorize_credential(
                &ctx,
                Scope::AuditRead,
                id,
                owner,
                "read a credential's audit events",
                missing,
            )
            .await?;
        filter.customer_id = Some(owner);
        filter.credential_id = Some(id);
        let mut items = self.store.list_audit(&filter).await?;
        let next = page_end(&mut items, filter.page_size, |e| Cursor {
            at_micros: crate::domain::unix_micros(e.created_at),
            id: e.id,
        });
        Ok(Listed { items, next })
    }
}
