//! The PostgreSQL backend's imports (see [`crate::store::import`]).

use super::*;
use crate::store::import::{ImportStore, ImportedCredential, ImportedCustomer};

#[async_trait]
impl ImportStore for PostgresStore {
    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %customer.id))]
    async fn import_customer(&self, customer: &ImportedCustomer) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO customers (id, email, company_name, status, subscription_tier, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(customer.id.as_uuid())
        .bind(&customer.email)
        .bind(&customer.company_name)
        .bind(customer.status.as_str())
        .bind(customer.tier.as_str())
        .bind(to_stored_precision(customer.created_at))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_on_unique(e, Taken::CustomerEmail(&customer.email)))?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(credential_id = %c.id))]
    async fn import_credential(
        &self,
        c: &ImportedCredential,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let now = to_stored_precision(now);
        let mut tx = self.pool.begin().await?;
        if customer_status_locked(&mut tx, c.customer_id).await?.is_none() {
            return Err(StoreError::NotFound(format!("customer {}", c.customer_id)));
        }
        let inserted = sqlx::query(
            "INSERT INTO cloud_credentials (id, customer_id, provider, credential_name, credential_type, \
             permissions, is_active, is_verified, last_verified_at, last_used_at, usage_count, created_at, \
             updated_at, current_version, latest_version, rotated_at, deleted_at, purge_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, 1, $12, \
             CASE WHEN $7 THEN NULL ELSE $14 END, \
             CASE WHEN $7 THEN NULL ELSE $14 + make_interval(secs => (SELECT recovery_window_secs FROM customers WHERE id = $2)) END) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(c.id.as_uuid())
        .bind(c.customer_id.as_uuid())
        .bind(c.provider.as_str())
        .bind(c.name.as_str())
        .bind(c.credential_type.as_str())
        .bind(c.permissions.as_str())
        .bind(c.is_active)
        .bind(c.is_verified)
        .bind(c.last_verified_at.map(to_stored_precision))
        .bind(c.last_used_at.map(to_stored_precision))
        .bind(c.usage_count)
        .bind(to_stored_precision(c.created_at))
        .bind(to_stored_precision(c.updated_at))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            conflict_on_unique(e, Taken::CredentialName { customer: c.customer_id, provider: c.provider, name: c.name.as_str() })
        })?;
        if inserted.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO credential_versions (credential_id, version, state, encrypted_credentials, key_version, \
             created_by, created_at) VALUES ($1, 1, 'enabled', $2, $3, NULL, $4)",
        )
        .bind(c.id.as_uuid())
        .bind(c.sealed.as_slice())
        .bind(c.key_version.map(i64::from))
        .bind(to_stored_precision(c.created_at))
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn import_audit(
        &self,
        id: Uuid,
        audit: AuditEntry,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let written = insert_audit_as(&mut tx, self.signer(), id, &audit, at).await?;
        tx.commit().await?;
        Ok(written)
    }
}
