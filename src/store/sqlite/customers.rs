//! The SQLite backend's customers: creation, lookup, listing, status changes.

use super::*;
use crate::store::customer_keys::purged_stays_cancelled;
use crate::store::{CancelledCredentialAudit, CustomerStore};

#[async_trait]
impl CustomerStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn ensure_customer(&self, customer: &NewCustomer) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO customers (id, email, company_name, status, subscription_tier, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(customer.id.to_string())
        .bind(&customer.email)
        .bind(&customer.company_name)
        .bind(customer.status.as_str())
        .bind(customer.tier.as_str())
        .bind(micros(OffsetDateTime::now_utc()))
        .execute(&mut **self.writer.acquire().await?)
        .await
        .map_err(|e| conflict_on_unique(e, Taken::CustomerEmail(&customer.email)))?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %id))]
    async fn customer_exists(&self, id: CustomerId) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM customers WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        Ok(found.is_some())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %id))]
    async fn customer(&self, id: CustomerId) -> Result<Option<Customer>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", customer_columns!(), " FROM customers WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(rows::customer).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_customers(&self, after: Option<Cursor>, limit: u32) -> Result<Vec<Customer>, StoreError> {
        let (at, id) = after.map_or((i64::MIN, String::new()), |c| (c.at_micros, c.id.to_string()));
        let rows = sqlx::query(concat!(
            "SELECT ",
            customer_columns!(),
            " FROM customers WHERE (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?"
        ))
        .bind(at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::customer).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %id))]
    async fn set_customer_status(
        &self,
        id: CustomerId,
        status: CustomerStatus,
        audit: AuditEntry,
        deleted: CancelledCredentialAudit<'_>,
        now: OffsetDateTime,
    ) -> Result<Customer, StoreError> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = AuditedTx::begin(&mut writer).await?;
        let purged: Option<i64> = sqlx::query_scalar(
            "SELECT destroyed_at FROM customer_keys WHERE customer_id = ? AND destroyed_at IS NOT NULL",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if purged.is_some() && status != CustomerStatus::Cancelled {
            return Err(purged_stays_cancelled(id));
        }
        let row = sqlx::query(concat!(
            "UPDATE customers SET status = ?1, \
             cancelled_at = CASE WHEN ?1 = 'cancelled' THEN coalesce(cancelled_at, ?3) END WHERE id = ?2 RETURNING ",
            customer_columns!()
        ))
        .bind(status.as_str())
        .bind(id.to_string())
        .bind(micros(now))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("customer {id}")))?;
        let customer = rows::customer(&row)?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
        if status == CustomerStatus::Cancelled {
            let credentials = sqlx::query(returning_credential!(soft_deleting!("customer_id = ?2")))
                .bind(micros(now))
                .bind(id.to_string())
                .fetch_all(&mut *tx)
                .await?;
            for row in &credentials {
                insert_audit(&mut tx, self.signer(), &deleted(&rows::metadata(row)?), now).await?;
            }
        }
        tx.commit().await?;
        Ok(customer)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %id))]
    async fn set_recovery_window(
        &self,
        id: CustomerId,
        window: std::time::Duration,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<Customer, StoreError> {
        let secs = i64::try_from(window.as_secs())
            .map_err(|_| StoreError::Config("recovery window too long".into()))?;
        let mut writer = self.writer.acquire().await?;
        let mut tx = AuditedTx::begin(&mut writer).await?;
        let row = sqlx::query(concat!(
            "UPDATE customers SET recovery_window_secs = ? WHERE id = ? RETURNING ",
            customer_columns!()
        ))
        .bind(secs)
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("customer {id}")))?;
        let customer = rows::customer(&row)?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
        tx.commit().await?;
        Ok(customer)
    }
}
