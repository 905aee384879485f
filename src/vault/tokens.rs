//! API tokens as the operator manages them (`credvault token ...`, `serve --dev`'s token, the
//! tests' tokens): recorded (only their hashes), listed and revoked through [`Directory`], by a
//! caller allowed to administer every customer. Issuing the token text is `auth`'s.

use time::OffsetDateTime;

use super::access::authorize_all_customers;
use super::{Directory, RequestContext, VaultError};
use crate::domain::{Scope, TokenName, TokenRecord};
use crate::store::{AuditChain, StoreError};

impl Directory {
    /// Records an issued token. ALREADY_EXISTS if its name is taken.
    pub async fn record_token(&self, ctx: &RequestContext, token: &TokenRecord) -> Result<(), VaultError> {
        authorize_all_customers(self.store.as_ref(), ctx, Scope::Admin, "create a token").await?;
        Ok(self.store.insert_token(token).await?)
    }

    /// Every token, revoked and expired ones included, oldest first.
    pub async fn list_tokens(&self, ctx: &RequestContext) -> Result<Vec<TokenRecord>, VaultError> {
        authorize_all_customers(self.store.as_ref(), ctx, Scope::Admin, "list tokens").await?;
        Ok(self.store.list_tokens().await?)
    }

    /// Revokes the named token (idempotent).
    pub async fn revoke_token(
        &self,
        ctx: &RequestContext,
        name: &TokenName,
    ) -> Result<TokenRecord, VaultError> {
        authorize_all_customers(self.store.as_ref(), ctx, Scope::Admin, "revoke a token").await?;
        self.store.revoke_token(name, OffsetDateTime::now_utc()).await.map_err(|e| match e {
            StoreError::NotFound(_) => VaultError::NotFound(format!("no token named {:?}", name.as_str())),
            other => other.into(),
        })
    }

    /// The whole audit log with its chain, as `audit verify` reads it.
    pub async fn audit_chain(&self, ctx: &RequestContext) -> Result<AuditChain, VaultError> {
        authorize_all_customers(self.store.as_ref(), ctx, Scope::AuditRead, "read the audit chain").await?;
        Ok(self.store.audit_chain().await?)
    }
}
