//! The PostgreSQL backend's customer keys.

use super::keys::key_version;
use super::*;
use crate::crypto::WrappedCustomerKey;
use crate::store::customer_keys::counts_of;
use crate::store::{CustomerKeyCounts, CustomerKeyStore, RewrappedCustomerKey, StoredCustomerKey};

const RECORD: &str = "SELECT customer_id, key_version::bigint AS key_version, wrapped, created_at, destroyed_at \
                      FROM customer_keys WHERE customer_id = $1";

#[async_trait]
impl CustomerKeyStore for PostgresStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn customer_key(&self, customer: CustomerId) -> Result<Option<StoredCustomerKey>, StoreError> {
        let row = sqlx::query(RECORD).bind(customer.as_uuid()).fetch_optional(&self.pool).await?;
        row.as_ref().map(rows::customer_key).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn add_customer_key(
        &self,
        customer: CustomerId,
        wrapped: &WrappedCustomerKey,
        now: OffsetDateTime,
    ) -> Result<StoredCustomerKey, StoreError> {
        let mut tx = self.pool.begin().await?;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM customers WHERE id = $1")
            .bind(customer.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("customer {customer} not found")));
        }
        sqlx::query(
            "INSERT INTO customer_keys (customer_id, key_version, wrapped, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (customer_id) DO NOTHING",
        )
        .bind(customer.as_uuid())
        .bind(key_version(wrapped.key_version)?)
        .bind(wrapped.bytes.as_slice())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(RECORD).bind(customer.as_uuid()).fetch_one(&mut *tx).await?;
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
            "SELECT customer_id, key_version::bigint AS key_version, wrapped, created_at, destroyed_at \
             FROM customer_keys WHERE customer_id > $1 AND key_version IS NOT NULL AND key_version <> $2 \
             ORDER BY customer_id LIMIT $3",
        )
        .bind(after.map_or(Uuid::nil(), |c| *c.as_uuid()))
        .bind(key_version(current)?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        if moved.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = moved.iter().map(|k| *k.customer_id.as_uuid()).collect();
        let old: Vec<i64> = moved.iter().map(|k| i64::from(k.old_key_version)).collect();
        let wrapped: Vec<&[u8]> = moved.iter().map(|k| k.wrapped.bytes.as_slice()).collect();
        let new: Vec<i64> = moved.iter().map(|k| i64::from(k.wrapped.key_version)).collect();
        let written = sqlx::query(
            "UPDATE customer_keys k SET wrapped = m.wrapped, key_version = m.new \
             FROM unnest($1::uuid[], $2::bigint[], $3::bytea[], $4::bigint[]) AS m(customer_id, old, wrapped, new) \
             WHERE k.customer_id = m.customer_id AND k.key_version = m.old",
        )
        .bind(&ids)
        .bind(&old)
        .bind(&wrapped)
        .bind(&new)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(written)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn destroy_customer_key(
        &self,
        customer: CustomerId,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM customers WHERE id = $1 FOR UPDATE")
            .bind(customer.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("customer {customer} not found")));
        }
        let destroyed = sqlx::query(
            "INSERT INTO customer_keys (customer_id, key_version, wrapped, created_at, destroyed_at) \
             VALUES ($1, NULL, NULL, $2, $2) \
             ON CONFLICT (customer_id) DO UPDATE SET key_version = NULL, wrapped = NULL, destroyed_at = $2 \
             WHERE customer_keys.destroyed_at IS NULL",
        )
        .bind(customer.as_uuid())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if destroyed == 0 {
            return Err(StoreError::Conflict(format!("customer {customer}'s key was destroyed already")));
        }
        sqlx::query(
            "UPDATE credential_versions SET state = 'destroyed', encrypted_credentials = NULL, key_version = NULL, \
             destroyed_at = coalesce(destroyed_at, $1) \
             WHERE key_version IS NOT NULL AND credential_id IN (SELECT id FROM cloud_credentials WHERE customer_id = $2)",
        )
        .bind(now)
        .bind(customer.as_uuid())
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn purged_customers(&self) -> Result<Vec<(CustomerId, OffsetDateTime)>, StoreError> {
        let rows: Vec<(Uuid, OffsetDateTime)> = sqlx::query_as(
            "SELECT customer_id, destroyed_at FROM customer_keys WHERE destroyed_at IS NOT NULL ORDER BY destroyed_at",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, at)| (CustomerId::from_uuid(id), at)).collect())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn customer_key_counts(&self) -> Result<CustomerKeyCounts, StoreError> {
        let rows: Vec<(Option<i64>, i64)> = sqlx::query_as(
            "SELECT key_version::bigint, count(*) FROM customer_keys GROUP BY key_version ORDER BY key_version",
        )
        .fetch_all(&self.pool)
        .await?;
        counts_of(rows)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn purge_due_at(&self, customer: CustomerId) -> Result<Option<OffsetDateTime>, StoreError> {
        let due: Option<(Option<OffsetDateTime>,)> = sqlx::query_as(
            "SELECT CASE WHEN status = 'cancelled' THEN cancelled_at + recovery_window_secs * interval '1 second' END \
             FROM customers WHERE id = $1",
        )
        .bind(customer.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        let (due,) = due.ok_or_else(|| StoreError::NotFound(format!("customer {customer} not found")))?;
        Ok(due)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn customers_due_for_purge(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<CustomerId>, StoreError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT c.id FROM customers c WHERE c.status = 'cancelled' \
             AND c.cancelled_at + c.recovery_window_secs * interval '1 second' <= $1 \
             AND NOT EXISTS (SELECT 1 FROM customer_keys k WHERE k.customer_id = c.id AND k.destroyed_at IS NOT NULL) \
             ORDER BY c.cancelled_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(CustomerId::from_uuid).collect())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn customer_keys_since(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        Ok(sqlx::query_scalar("SELECT customer_keys_since FROM key_hierarchy WHERE id = 1")
            .fetch_one(&self.pool)
            .await?)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn enable_customer_keys(
        &self,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, StoreError> {
        let mut tx = self.pool.begin().await?;
        let since: Option<OffsetDateTime> =
            sqlx::query_scalar("SELECT customer_keys_since FROM key_hierarchy WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
        if let Some(since) = since {
            return Ok(since);
        }
        let now = to_stored_precision(now);
        sqlx::query("UPDATE key_hierarchy SET customer_keys_since = $1 WHERE id = 1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
        tx.commit().await?;
        Ok(now)
    }
}
