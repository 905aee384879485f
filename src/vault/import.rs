//! Importing the seed's system (`credvault import pgcrypto`): each decrypted secret is mapped
//! from the seed's JSON shape and validated exactly as Store validates it, then sealed with
//! this vault's key; the metadata is kept as it was; customers and the old audit history come
//! along, the history marked as imported. Every write is skipped when its row exists already.

use std::net::IpAddr;

use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::access::authorize_all_customers;
use super::{Binding, RequestContext, Vault, VaultError};
use crate::domain::{
    AuditAction, CredentialId, CredentialName, CredentialType, CustomerId, CustomerStatus, Permission,
    Provider, Scope, SecretPayload, SubscriptionTier,
};
use crate::store::import::{ImportedCredential, ImportedCustomer};
use crate::store::seed_source::{SourceAuditRow, SourceCredential, SourceCustomer};

/// The seed's JSON shape of a provider's secret, as a typed secret; `Err` says what is wrong
/// (a field's name, never its value).
fn secret_from_seed(provider: Provider, plaintext: &[u8]) -> Result<SecretPayload, String> {
    let fields: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(plaintext)
        .map_err(|_| "the decrypted credentials are not a JSON object".to_owned())?;
    // A GCP key may have been stored as the key's JSON object rather than as its text.
    let fields = fields
        .into_iter()
        .filter_map(|(name, value)| {
            let text = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => return None,
                other => other.to_string(),
            };
            Some((name, Zeroizing::new(text)))
        })
        .collect();
    let secret = SecretPayload::from_fields(provider, fields).map_err(|v| v.to_string())?;
    secret.validate("credentials").map_err(|v| v.to_string())?;
    Ok(secret)
}

impl Vault {
    /// Maps, validates and seals one decrypted credential of the seed's system. `Err` is the
    /// reason the row is skipped.
    pub fn seal_imported(
        &self,
        source: &SourceCredential,
        plaintext: &[u8],
    ) -> Result<ImportedCredential, String> {
        let provider_name = source.provider.as_deref().unwrap_or_default();
        let provider = Provider::parse(provider_name).ok_or_else(|| {
            format!("unknown provider {}", crate::domain::quoted(&crate::domain::shortened(provider_name)))
        })?;
        let name =
            CredentialName::parse(source.credential_name.as_deref().unwrap_or_default(), "credential_name")
                .map_err(|v| v.to_string())?;
        let credential_type = CredentialType::parse_or_default(
            source.credential_type.as_deref().unwrap_or_default(),
            provider,
            "credential_type",
        )
        .map_err(|v| v.to_string())?;
        let permissions = match source.permissions.as_deref().filter(|p| !p.is_empty()) {
            None => Permission::ReadOnly,
            Some(p) => Permission::parse(p)
                .ok_or_else(|| format!("unknown permissions {}", crate::domain::quoted(p)))?,
        };
        let secret = secret_from_seed(provider, plaintext)?;
        let id = CredentialId::from_uuid(source.id);
        let customer_id = CustomerId::from_uuid(source.customer_id);
        let binding = Binding { credential_id: id, customer_id, provider, version: 1 };
        // Under the master key: the customer may not be written yet (the rewrap moves it under
        // the customer's key once it is).
        let sealed = self.seal_under_master(&binding, &secret.to_plaintext()).map_err(|e| e.to_string())?;
        let created_at = source.created_at.unwrap_or_else(OffsetDateTime::now_utc);
        Ok(ImportedCredential {
            id,
            customer_id,
            provider,
            name,
            credential_type,
            permissions,
            is_active: source.is_active.unwrap_or(true),
            is_verified: source.is_verified.unwrap_or(false),
            last_verified_at: source.last_verified_at,
            last_used_at: source.last_used_at,
            usage_count: source.usage_count.unwrap_or(0).max(0),
            created_at,
            updated_at: source.updated_at.unwrap_or(created_at),
            sealed: sealed.bytes,
            key_version: sealed.key_version,
        })
    }

    /// Imports a customer of the seed's system unless it exists; whether it was created.
    pub async fn import_customer(
        &self,
        ctx: &RequestContext,
        source: &SourceCustomer,
    ) -> Result<bool, VaultError> {
        authorize_all_customers(self.store.as_ref(), ctx, Scope::Admin, "import customers").await?;
        let customer = imported_customer(source).map_err(|why| {
            VaultError::InvalidArgument(crate::domain::FieldViolation::new("customers", why))
        })?;
        Ok(self.store.import_customer(&customer).await?)
    }

    /// Writes one sealed credential with its `created` audit row unless it exists; whether it
    /// was written.
    pub async fn import_credential(
        &self,
        ctx: &RequestContext,
        credential: &ImportedCredential,
    ) -> Result<bool, VaultError> {
        authorize_all_customers(self.store.as_ref(), ctx, Scope::Admin, "import credentials").await?;
        let audit = ctx.audit(
            AuditAction::Created,
            Some(credential.customer_id),
            Some(credential.id),
            format!(
                "imported {} credential {:?} ({}, {}{}) from the pgcrypto database",
                credential.provider,
                credential.name.as_str(),
                credential.credential_type.as_str(),
                credential.permissions.as_str(),
                if credential.is_active { "" } else { ", deleted there" }
            ),
        );
        Ok(self.store.import_credential(credential, audit, OffsetDateTime::now_utc()).await?)
    }

    /// Adds one row of the old audit log, marked as imported, unless it is there already.
    pub async fn import_audit_row(
        &self,
        ctx: &RequestContext,
        row: &SourceAuditRow,
    ) -> Result<bool, VaultError> {
        authorize_all_customers(self.store.as_ref(), ctx, Scope::Admin, "import the audit log").await?;
        let original = row.action.as_deref().unwrap_or("unknown");
        let action = AuditAction::parse(original).unwrap_or(AuditAction::Updated);
        let details = match &row.action_details {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        };
        let audit = crate::domain::AuditEntry {
            credential_id: row.credential_id.map(CredentialId::from_uuid),
            customer_id: row.customer_id.map(CustomerId::from_uuid),
            action,
            details: format!("[imported {original}] {}", crate::domain::shortened_to(&details, 2000)),
            ip_address: row.ip_address.as_deref().and_then(|ip| ip.split('/').next()?.parse::<IpAddr>().ok()),
            actor: None,
        };
        let at = row.created_at.unwrap_or_else(OffsetDateTime::now_utc);
        Ok(self.store.import_audit(row.id, audit, at).await?)
    }

    /// The import's own audit row, with its counts.
    pub async fn audit_import(&self, ctx: &RequestContext, summary: String) -> Result<(), VaultError> {
        let audit = ctx.audit(AuditAction::Updated, None, None, summary);
        Ok(self.store.append_audit(audit, OffsetDateTime::now_utc()).await?)
    }
}

fn imported_customer(source: &SourceCustomer) -> Result<ImportedCustomer, String> {
    let status = match source.status.as_deref().filter(|s| !s.is_empty()) {
        None => CustomerStatus::Active,
        Some(s) => {
            CustomerStatus::parse(s).ok_or_else(|| format!("customer {}: unknown status {s:?}", source.id))?
        }
    };
    let tier = match source.subscription_tier.as_deref().filter(|s| !s.is_empty()) {
        None => SubscriptionTier::Free,
        Some(t) => {
            SubscriptionTier::parse(t).ok_or_else(|| format!("customer {}: unknown tier {t:?}", source.id))?
        }
    };
    Ok(ImportedCustomer {
        id: CustomerId::from_uuid(source.id),
        email: source.email.clone().unwrap_or_else(|| format!("{}@imported.invalid", source.id)),
        company_name: source.company_name.clone().unwrap_or_default(),
        status,
        tier,
        created_at: source.created_at.unwrap_or_else(OffsetDateTime::now_utc),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_shapes_map_to_typed_secrets_and_placeholders_are_refused() {
        let vultr = secret_from_seed(Provider::Vultr, br#"{"api_key":"k"}"#).unwrap();
        assert!(matches!(&vultr, SecretPayload::Vultr { api_key } if api_key == "k"));
        let placeholder =
            secret_from_seed(Provider::Gcp, br#"{"service_account_json":"{...json content...}"}"#);
        assert!(placeholder.unwrap_err().starts_with("credentials.gcp.service_account_json"));
        let unknown = secret_from_seed(Provider::Vultr, br#"{"api_key":"k","password":"p"}"#).unwrap_err();
        assert!(
            unknown.starts_with("credentials.password: is not a vultr field") && !unknown.contains("\"p\""),
            "{unknown}"
        );
        assert!(secret_from_seed(Provider::Aws, b"not json").is_err());
        let aws =
            secret_from_seed(Provider::Aws, br#"{"access_key_id":"AKIA1","secret_access_key":"s"}"#).unwrap();
        assert!(matches!(aws, SecretPayload::Aws { session_token: None, .. }));
    }
}
