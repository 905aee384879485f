//! The SQLite backend's customer keys. Writes run on the one writer connection.

use super::*;
use crate::crypto::WrappedCustomerKey;
use crate::store::customer_keys::counts_of;
use crate::store::{CustomerKeyCounts, CustomerKeyStore, RewrappedCustomerKey, StoredCustomerKey};

const RECORD: &str = "SELECT customer_id, key_version, wrapped, created_at, destroyed_at FROM customer_keys \
                      WHERE customer_id = ?";

#[async_trait]
impl CustomerKeyStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn customer_key(&self, customer: CustomerId) -> Result<Option<StoredCustomerKey>, StoreError> {
        let row = sqlx::query(RECORD).bind(customer.to_string()).fetch_optional(&self.reader).await?;
        row.as_ref().map(rows::customer_key).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn add_customer_key(
        &self,
        customer: CustomerId,
        wrapped: &WrappedCustomerKey,
        now: OffsetDateTime,
    ) -> Result<StoredCustomerKey, StoreError> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = super::writer::begin_write(&mut writer).await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM customers WHERE id = ?")
            .bind(customer.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("customer {customer} not found")));
        }
        sqlx::query(
            "INSERT INTO customer_keys (customer_id, key_version, wrapped, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (customer_id) DO NOTHING",
        )
        .bind(customer.to_string())
        .bind(i64::from(wrapped.key_version))
        .bind(wrapped.bytes.as_slice())
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(RECORD).bind(customer.to_string()).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        rows::customer_key(&row)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn customer_keys_to_rewrap(
        &self,
        current: u32,
        after: Option<CustomerId>,
        limit: u32,
    ) -> Result<Vec<(CustomerId, WrappedCustomerKey)>, StoreError> {
        let rows = sqlx::query(
            "SELECT customer_id, key_version, wrapped, created_at, destroyed_at FROM customer_keys \
             WHERE customer_id > ? AND key_version IS NOT NULL AND key_version <> ? ORDER BY customer_id LIMIT ?",
        )
        .bind(after.map(|c| c.to_string()).unwrap_or_default())
        .bind(i64::from(current))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let record = rows::customer_key(row)?;
                Ok((record.customer_id, record.wrapped.expect("the query selects keys not destroyed")))
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(keys = moved.len()))]
    async fn replace_customer_keys(&self, moved: &[RewrappedCustomerKey]) -> Result<u64, StoreError> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = super::writer::begin_write(&mut writer).await?;
        let mut written = 0;
        for key in moved {
            written += sqlx::query(
                "UPDATE customer_keys SET wrapped = ?, key_version = ? WHERE customer_id = ? AND key_version = ?",
            )
            .bind(key.wrapped.bytes.as_slice())
            .bind(i64::from(key.wrapped.key_version))
            .bind(key.customer_id.to_string())
            .bind(i64::from(key.old_key_version))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(written)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn destroy_customer_key(
        &self,
        customer: CustomerId,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = AuditedTx::begin(&mut writer).await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM customers WHERE id = ?")
            .bind(customer.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("customer {customer} not found")));
        }
        let destroyed = sqlx::query(
            "INSERT INTO customer_keys (customer_id, key_version, wrapped, created_at, destroyed_at) \
             VALUES (?1, NULL, NULL, ?2, ?2) \
             ON CONFLICT (customer_id) DO UPDATE SET key_version = NULL, wrapped = NULL, destroyed_at = ?2 \
             WHERE customer_keys.destroyed_at IS NULL",
        )
        .bind(customer.to_string())
        .bind(micros(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if destroyed == 0 {
            return Err(StoreError::Conflict(format!("customer {customer}'s key was destroyed already")));
        }
        sqlx::query(
            "UPDATE credential_versions SET state = 'destroyed', encrypted_credentials = NULL, key_version = NULL, \
             destroyed_at = coalesce(destroyed_at, ?1) \
             WHERE key_version IS NOT NULL AND credential_id IN (SELECT id FROM cloud_credentials WHERE customer_id = ?2)",
        )
        .bind(micros(now))
        .bind(customer.to_string())
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn purged_customers(&self) -> Result<Vec<(CustomerId, OffsetDateTime)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT customer_id, destroyed_at FROM customer_keys WHERE destroyed_at IS NOT NULL ORDER BY destroyed_at",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|(id, at)| {
                let id =
                    id.parse().map(CustomerId::from_uuid).map_err(|_| rows::corrupt("customer id", &id))?;
                Ok((id, from_micros(at)?))
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn customer_key_counts(&self) -> Result<CustomerKeyCounts, StoreError> {
        let rows: Vec<(Option<i64>, i64)> = sqlx::query_as(
            "SELECT key_version, count(*) FROM customer_keys GROUP BY key_version ORDER BY key_version",
        )
        .fetch_all(&self.reader)
        .await?;
        counts_of(rows)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn purge_due_at(&self, customer: CustomerId) -> Result<Option<OffsetDateTime>, StoreError> {
        let due: Option<(Option<i64>,)> = sqlx::query_as(
            "SELECT CASE WHEN status = 'cancelled' THEN cancelled_at + recovery_window_secs * 1000000 END \
             FROM customers WHERE id = ?",
        )
        .bind(customer.to_string())
        .fetch_optional(&self.reader)
        .await?;
        let (due,) = due.ok_or_else(|| StoreError::NotFound(format!("customer {customer} not found")))?;
        due.map(from_micros).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn customers_due_for_purge(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<CustomerId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT c.id FROM customers c WHERE c.status = 'cancelled' \
             AND c.cancelled_at + c.recovery_window_secs * 1000000 <= ?1 \
             AND NOT EXISTS (SELECT 1 FROM customer_keys k WHERE k.customer_id = c.id AND k.destroyed_at IS NOT NULL) \
             ORDER BY c.cancelled_at LIMIT ?2",
        )
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        ids.iter()
            .map(|id| id.parse().map(CustomerId::from_uuid).map_err(|_| rows::corrupt("customer id", id)))
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn customer_keys_since(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        let since: Option<i64> =
            sqlx::query_scalar("SELECT customer_keys_since FROM key_hierarchy WHERE id = 1")
                .fetch_one(&self.reader)
                .await?;
        since.map(from_micros).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn enable_customer_keys(
        &self,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, StoreError> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = AuditedTx::begin(&mut writer).await?;
        let since: Option<i64> =
            sqlx::query_scalar("SELECT customer_keys_since FROM key_hierarchy WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        if let Some(since) = since {
            return from_micros(since);
        }
        let now = crate::store::sql::to_stored_precision(now);
        sqlx::query("UPDATE key_hierarchy SET customer_keys_since = ? WHERE id = 1")
            .bind(micros(now))
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
        tx.commit().await?;
        Ok(now)
    }
}
