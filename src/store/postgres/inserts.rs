//! Store's statements on PostgreSQL beside the group commit: the one-statement insert, the
//! transaction that moves a provider's default, the idempotent lookup, and why a customer
//! refused an insert.

use super::*;
use crate::store::standing::require_good_standing;

impl PostgresStore {
    /// Store's common case as ONE statement: the credential (if its customer exists and is in
    /// good standing) and its audit row. `None` if not.
    pub(super) async fn insert_plain(
        &self,
        new: &NewCredential,
        audit: &AuditEntry,
    ) -> Result<Option<PgRow>, sqlx::Error> {
        let sql = audited_change!(
            concat!(
                "INSERT INTO cloud_credentials (id, customer_id, provider, credential_name, credential_type, \
                 permissions, is_default, idempotency_key, request_fingerprint, created_at, updated_at, \
                 current_version, latest_version, rotated_at) \
                 SELECT $8, $9, $10, $11, $14, $15, false, $16, $17, $5, $5, 1, 1, $5 \
                 WHERE EXISTS (SELECT 1 FROM customers WHERE id = $9 AND status IN ",
                good_standing_sql!(),
                " FOR SHARE)"
            ),
            ", version AS (INSERT INTO credential_versions (credential_id, version, state, \
             encrypted_credentials, key_version, created_by, created_at) \
             SELECT id, 1, 'enabled', $12, $13, $6, $5 FROM changed)"
        );
        bind_credential(audited(sql, self.signer(), audit, new.now), new).fetch_optional(&self.pool).await
    }

    /// Store of a credential that becomes its provider's default: a short transaction that
    /// moves the default. `None` if there is no such customer or it is not in good standing.
    pub(super) async fn insert_default(
        &self,
        new: &NewCredential,
        audit: &AuditEntry,
    ) -> Result<Option<PgRow>, sqlx::Error> {
        let now = to_stored_precision(new.now);
        let mut tx = self.pool.begin().await?;
        // Lock the customer row, so two concurrent "make default" Stores queue instead of
        // colliding on the one-default index (and a cancellation waits for this Store).
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM customers WHERE id = $1 FOR UPDATE")
                .bind(new.customer_id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
        if !status.as_deref().and_then(CustomerStatus::parse).is_some_and(CustomerStatus::in_good_standing) {
            return Ok(None);
        }
        sqlx::query(
            "UPDATE cloud_credentials SET is_default = false, updated_at = $1, revision = revision + 1 \
             WHERE customer_id = $2 AND provider = $3 AND is_default",
        )
        .bind(now)
        .bind(new.customer_id.as_uuid())
        .bind(new.provider.as_str())
        .execute(&mut *tx)
        .await?;
        let query = sqlx::query(concat!(
            "WITH version AS (INSERT INTO credential_versions (credential_id, version, state, \
               encrypted_credentials, key_version, created_by, created_at) VALUES ($1, 1, 'enabled', $5, $6, $12, $11)) \
             INSERT INTO cloud_credentials (id, customer_id, provider, credential_name, credential_type, \
             permissions, is_default, idempotency_key, request_fingerprint, created_at, updated_at, \
             current_version, latest_version, rotated_at) \
             VALUES ($1, $2, $3, $4, $7, $8, true, $9, $10, $11, $11, 1, 1, $11) RETURNING ",
            credential_columns!()
        ));
        let row = bind_credential(query, new)
            .bind(now)
            .bind(audit.actor.as_ref().map(TokenName::as_str))
            .fetch_one(&mut *tx)
            .await?;
        insert_audit(&mut tx, self.signer(), audit, now).await?;
        tx.commit().await?;
        Ok(Some(row))
    }
}

impl PostgresStore {
    /// Why a Store was not inserted for want of its customer: missing, or not in good standing.
    pub(super) async fn standing_refusal(&self, customer_id: CustomerId, attempt: &str) -> StoreError {
        let status: Result<Option<String>, sqlx::Error> =
            sqlx::query_scalar("SELECT status FROM customers WHERE id = $1")
                .bind(customer_id.as_uuid())
                .fetch_optional(&self.pool)
                .await;
        match status {
            Err(e) => e.into(),
            Ok(status) => match require_good_standing(customer_id, status.as_deref(), attempt) {
                Err(refusal) => refusal,
                // Back in good standing since the insert read it.
                Ok(()) => StoreError::Stale(format!(
                    "customer {customer_id}'s status changed while the credential was being stored; retry"
                )),
            },
        }
    }

    pub(super) async fn find_idempotent(&self, new: &NewCredential) -> Result<Option<Inserted>, StoreError> {
        let Some((key, _)) = &new.idempotency else {
            return Ok(None);
        };
        let row = sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            ", request_fingerprint FROM cloud_credentials WHERE customer_id = $1 AND idempotency_key = $2"
        ))
        .bind(new.customer_id.as_uuid())
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Inserted::Existing {
                credential: rows::metadata(&row)?,
                fingerprint: row.try_get::<Option<Vec<u8>>, _>("request_fingerprint")?.unwrap_or_default(),
            })
        })
        .transpose()
    }
}
