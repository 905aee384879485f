//! UpdateCredential: a credential's name, type, permissions and default flag change in place,
//! with an `updated` audit row naming what changed; its id, provider and versions stay.

use time::OffsetDateTime;

use super::{RequestContext, Vault, VaultError};
use crate::domain::{
    AuditAction, CredentialId, CredentialMetadata, CredentialName, CredentialType, Etag, FieldViolation,
    Permission, Scope,
};
use crate::store::{CredentialUpdate, StoreError};

/// A validated UpdateCredential request: the fields to change (`None`: unchanged).
#[derive(Debug, Default)]
pub struct CredentialChanges {
    pub name: Option<CredentialName>,
    /// The type as sent: empty means the provider's usual kind (checked against the provider
    /// once the credential is read).
    pub credential_type: Option<String>,
    pub permissions: Option<Permission>,
    pub is_default: Option<bool>,
}

impl CredentialChanges {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.credential_type.is_none()
            && self.permissions.is_none()
            && self.is_default.is_none()
    }
}

impl Vault {
    #[tracing::instrument(skip_all, fields(credential_id = %id))]
    pub async fn update_credential(
        &self,
        ctx: RequestContext,
        id: CredentialId,
        changes: CredentialChanges,
        expected: Option<Etag>,
    ) -> Result<CredentialMetadata, VaultError> {
        self.ensure_ready()?;
        let credential =
            self.credential_for(&ctx, Scope::CredentialsWrite, id, "update a credential").await?;
        if changes.is_empty() {
            return Err(FieldViolation::new(
                "update_mask",
                "names no field to change; give one or more of credential_name, credential_type, permissions, is_default",
            )
            .into());
        }
        let credential_type = changes
            .credential_type
            .map(|t| CredentialType::parse_or_default(&t, credential.provider, "credential_type"))
            .transpose()?;
        let mut said = Vec::new();
        if let Some(name) = &changes.name {
            said.push(format!("name {:?}", name.as_str()));
        }
        if let Some(t) = &credential_type {
            said.push(format!("type {}", t.as_str()));
        }
        if let Some(p) = changes.permissions {
            said.push(format!("permissions {}", p.as_str()));
        }
        if let Some(d) = changes.is_default {
            said.push(if d { "made default".to_owned() } else { "no longer default".to_owned() });
        }
        let audit = ctx.audit(
            AuditAction::Updated,
            Some(credential.customer_id),
            Some(id),
            format!(
                "updated {} credential {:?}: {}",
                credential.provider,
                credential.name.as_str(),
                said.join(", ")
            ),
        );
        let update = CredentialUpdate {
            id,
            customer_id: credential.customer_id,
            name: changes.name,
            credential_type,
            permissions: changes.permissions,
            is_default: changes.is_default,
            expected,
            now: OffsetDateTime::now_utc(),
        };
        let updated = self.store.update_credential(update, audit).await.map_err(|e| match e {
            StoreError::NotFound(_) => {
                VaultError::NotFound(format!("no active credential {id} (unknown, or deleted)"))
            }
            other => other.into(),
        })?;
        // The cache holds the name for the audit rows of later Gets.
        self.served.remove(id);
        tracing::info!("credential updated");
        Ok(updated)
    }
}
