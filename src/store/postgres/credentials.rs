//! The PostgreSQL backend's credentials: Store, Get's read and audited use, verification, listing, soft delete.

use super::*;
use crate::domain::{
    CredentialName, CredentialType, Permission, ProviderCounts, VerificationRecord, VerificationState,
};
use crate::store::sql::ListStatements;
use crate::store::standing::require_good_standing;
use crate::store::versions::{self, VersionHead};
use crate::store::{CredentialStore, CredentialUpdate, PurgeReason};

/// The columns Get reads beside a credential's (`c`) metadata: the version (`v`, joined on
/// `coalesce($version, c.current_version)`), its state and ciphertext, and the customer's status.
macro_rules! served_version {
    ($version:literal) => {
        concat!(
            ", coalesce(",
            $version,
            "::bigint, c.current_version) AS served_version, v.state AS version_state, ",
            "v.encrypted_credentials, ",
            "(SELECT status FROM customers WHERE customers.id = c.customer_id) AS customer_status"
        )
    };
}

#[async_trait]
impl CredentialStore for PostgresStore {
    #[tracing::instrument(level = "debug", skip_all, fields(credential_id = %new.id, customer_id = %new.customer_id))]
    async fn insert_credential(&self, new: NewCredential, audit: AuditEntry) -> Result<Inserted, StoreError> {
        if let Some(existing) = self.find_idempotent(&new).await? {
            return Ok(existing);
        }
        let inserted = if new.make_default {
            self.insert_default(&new, &audit).await
        } else {
            // Stores that move a default take the customer's lock (see `insert_default`).
            let store = Arc::new(crate::store::group_commit::NewStore { new: new.clone(), audit });
            if let Some(created) = self.stores.submit(store.clone()).await? {
                return Ok(Inserted::Created(created));
            }
            // Not inserted by the group: on its own, for the precise answer.
            self.insert_plain(&new, &store.audit).await
        };
        match inserted {
            Ok(Some(row)) => Ok(Inserted::Created(rows::metadata(&row)?)),
            Ok(None) => Err(self.standing_refusal(new.customer_id, "store a credential").await),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                // A concurrent Store with the same idempotency key may have committed first; it
                // can trip the name index before the key index, so look before calling it a
                // conflict, and answer as that Store did.
                if let Some(existing) = self.find_idempotent(&new).await? {
                    return Ok(existing);
                }
                Err(StoreError::Conflict(format!(
                    "customer {} already has an active {} credential named {}",
                    new.customer_id,
                    new.provider,
                    quoted(new.name.as_str())
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn fetch_sealed(
        &self,
        selector: CredentialSelector,
        version: Option<VersionNumber>,
    ) -> Result<Option<SealedCredential>, StoreError> {
        let version = version.map(i64::from);
        let row = match selector {
            CredentialSelector::Id(id) => {
                sqlx::query(concat!(
                    "SELECT ",
                    stored_credential_columns!("c."),
                    ", ",
                    usage_columns!("c.", "u."),
                    served_version!("$2"),
                    " FROM cloud_credentials c LEFT JOIN credential_uses u ON u.credential_id = c.id \
                     LEFT JOIN credential_versions v \
                     ON v.credential_id = c.id AND v.version = coalesce($2, c.current_version) \
                     WHERE c.id = $1 AND c.is_active"
                ))
                .bind(id.as_uuid())
                .bind(version)
                .fetch_optional(&self.pool)
                .await?
            }
            CredentialSelector::Preferred { customer_id, provider } => {
                sqlx::query(concat!(
                    "SELECT ",
                    credential_columns!("c."),
                    served_version!("$3"),
                    " FROM cloud_credentials c LEFT JOIN credential_versions v \
                     ON v.credential_id = c.id AND v.version = coalesce($3, c.current_version) \
                     WHERE c.customer_id = $1 AND c.provider = $2 AND c.is_active \
                     ORDER BY c.current_version IS NOT NULL DESC, c.is_default DESC, c.is_verified DESC, \
                     c.created_at DESC, c.id DESC LIMIT 1"
                ))
                .bind(customer_id.as_uuid())
                .bind(provider.as_str())
                .bind(version)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        row.as_ref().map(rows::sealed_credential).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(credential_id = %claim.id))]
    async fn record_use(
        &self,
        claim: UseClaim,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<Option<CredentialMetadata>, StoreError> {
        self.uses.submit(crate::store::group_commit::Use { claim, audit, now }).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(credential_id = %id))]
    async fn record_verification(
        &self,
        id: CredentialId,
        record: &VerificationRecord,
        audit: AuditEntry,
    ) -> Result<CredentialMetadata, StoreError> {
        // SET expressions read the row as it was before this UPDATE; the row lock makes
        // concurrent records count one after the other.
        let sql = audited_change!(
            "UPDATE cloud_credentials SET is_verified = $10, last_verified_at = $9, updated_at = $9, \
             verified_identity = CASE WHEN $10 THEN $11 ELSE verified_identity END, \
             verification_findings = $12, \
             verification_failures = CASE WHEN $10 THEN 0 ELSE verification_failures + 1 END, \
             first_failed_at = CASE WHEN $10 THEN NULL ELSE coalesce(first_failed_at, $9) END, \
             failing_since = CASE WHEN $10 THEN NULL \
               WHEN verification_failures + 1 >= $13 THEN coalesce(first_failed_at, $9) END \
             WHERE id = $8 AND is_active AND current_version = $14"
        );
        let query = audited(sql, self.signer(), &audit, record.now)
            .bind(id.as_uuid())
            .bind(to_stored_precision(record.now))
            .bind(record.valid)
            .bind(rows::identity_json(&record.identity))
            .bind(rows::findings_json(&record.findings))
            .bind(i64::from(record.failing_after))
            .bind(i64::from(record.version));
        self.fetch_changed(query, id).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn claim_due_verifications(
        &self,
        now: OffsetDateTime,
        interval: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<(CredentialId, Provider)>, StoreError> {
        let (least, spread) = crate::store::sql::verify_jitter(interval);
        // SKIP LOCKED: instances claiming at the same moment take different rows.
        let rows = sqlx::query(
            "UPDATE cloud_credentials SET next_verify_at = \
               $1 + make_interval(secs => ($2::bigint + floor(random() * $3::bigint)) / 1e6) \
             WHERE id IN (SELECT id FROM cloud_credentials WHERE is_active AND next_verify_at <= $1 \
               ORDER BY next_verify_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING id, provider",
        )
        .bind(to_stored_precision(now))
        .bind(least)
        .bind(spread)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::claimed_verification).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn defer_verifications(&self, ids: &[CredentialId], at: OffsetDateTime) -> Result<(), StoreError> {
        let ids: Vec<Uuid> = ids.iter().map(|id| *id.as_uuid()).collect();
        sqlx::query("UPDATE cloud_credentials SET next_verify_at = $1 WHERE id = ANY($2)")
            .bind(to_stored_precision(at))
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn verification_state_counts(&self) -> Result<Vec<(VerificationState, i64)>, StoreError> {
        let rows = sqlx::query(crate::store::sql::VERIFICATION_STATE_COUNTS).fetch_all(&self.pool).await?;
        rows::verification_state_counts(&rows)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list(&self, filter: &ListFilter) -> Result<Vec<CredentialMetadata>, StoreError> {
        let (after_created, after_id) = match &filter.after {
            Some(cursor) => (
                Some(
                    OffsetDateTime::from_unix_timestamp_nanos(i128::from(cursor.created_at_micros) * 1_000)
                        .map_err(|e| StoreError::Other(Box::new(e)))?,
                ),
                Some(*cursor.id.as_uuid()),
            ),
            None => (None, None),
        };
        macro_rules! list {
            ($($filter:literal)*) => {
                concat!(
                    "SELECT ",
                    stored_credential_columns!("c."),
                    ", ",
                    usage_columns!("c.", "u."),
                    " FROM cloud_credentials c LEFT JOIN credential_uses u ON u.credential_id = c.id \
                     WHERE customer_id = $1 AND ($3 OR is_active) ",
                    $($filter,)*
                    "ORDER BY created_at DESC, id DESC LIMIT $6"
                )
            };
        }
        const LIST: ListStatements = ListStatements {
            all: list!(),
            by_provider: list!("AND provider = $2 "),
            after: list!("AND (created_at, id) < ($4, $5) "),
            by_provider_after: list!("AND provider = $2 " "AND (created_at, id) < ($4, $5) "),
        };
        let statement = LIST.pick(filter);
        let rows = sqlx::query(statement)
            .bind(filter.customer_id.as_uuid())
            .bind(filter.provider.map(Provider::as_str))
            .bind(filter.include_inactive)
            .bind(after_created)
            .bind(after_id)
            .bind(i64::from(filter.page_size) + 1)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::metadata).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %customer_id))]
    async fn summary_counts(&self, customer_id: CustomerId) -> Result<Vec<ProviderCounts>, StoreError> {
        let rows = sqlx::query(crate::store::sql::SUMMARY_COUNTS)
            .bind(customer_id.as_uuid())
            .fetch_all(&self.pool)
            .await?;
        rows::provider_counts(&rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %customer_id))]
    async fn all_for_customer(&self, customer_id: CustomerId) -> Result<Vec<CredentialMetadata>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM cloud_credentials WHERE customer_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(customer_id.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::metadata).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(credential_id = %id))]
    async fn soft_delete(
        &self,
        id: CredentialId,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<CredentialMetadata, StoreError> {
        let sql = audited_change!(soft_deleting!("$9", "id = $8"));
        let query =
            audited(sql, self.signer(), &audit, now).bind(id.as_uuid()).bind(to_stored_precision(now));
        self.fetch_changed(query, id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(credential_id = %update.id))]
    async fn update_credential(
        &self,
        update: CredentialUpdate,
        audit: AuditEntry,
    ) -> Result<CredentialMetadata, StoreError> {
        let now = to_stored_precision(update.now);
        let mut tx = self.pool.begin().await?;
        if update.is_default == Some(true) {
            // The customer's lock, as Store takes it to move a default: before the credential's,
            // in the order a cancellation takes them.
            sqlx::query("SELECT 1 FROM customers WHERE id = $1 FOR UPDATE")
                .bind(update.customer_id.as_uuid())
                .execute(&mut *tx)
                .await?;
        }
        let head = super::versions::head_locked(&mut tx, update.id).await?;
        let head = VersionHead::check(head, update.id, update.customer_id, update.expected)?;
        if update.is_default == Some(true) {
            sqlx::query(
                "UPDATE cloud_credentials SET is_default = false, updated_at = $1, revision = revision + 1 \
                 WHERE customer_id = $2 AND provider = $3 AND is_default AND id <> $4",
            )
            .bind(now)
            .bind(update.customer_id.as_uuid())
            .bind(head.provider.as_str())
            .bind(update.id.as_uuid())
            .execute(&mut *tx)
            .await?;
        }
        let row = sqlx::query(concat!(
            "UPDATE cloud_credentials SET credential_name = coalesce($1, credential_name), \
             credential_type = coalesce($2, credential_type), permissions = coalesce($3, permissions), \
             is_default = coalesce($4, is_default), revision = revision + 1, updated_at = $5 WHERE id = $6 RETURNING ",
            credential_columns!()
        ))
        .bind(update.name.as_ref().map(CredentialName::as_str))
        .bind(update.credential_type.as_ref().map(CredentialType::as_str))
        .bind(update.permissions.map(Permission::as_str))
        .bind(update.is_default)
        .bind(now)
        .bind(update.id.as_uuid())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            let name = update.name.as_ref().map_or("", CredentialName::as_str);
            conflict_on_unique(e, Taken::CredentialName { customer: update.customer_id, provider: head.provider, name })
        })?;
        let credential = rows::metadata(&row)?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
        tx.commit().await?;
        Ok(credential)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(credential_id = %id))]
    async fn find_credential(&self, id: CredentialId) -> Result<Option<CredentialMetadata>, StoreError> {
        let row =
            sqlx::query(concat!("SELECT ", credential_columns!(), " FROM cloud_credentials WHERE id = $1"))
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(rows::metadata).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(credential_id = %id, customer_id = %customer_id))]
    async fn restore_credential(
        &self,
        id: CredentialId,
        customer_id: CustomerId,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<CredentialMetadata, StoreError> {
        let now = to_stored_precision(now);
        let mut tx = self.pool.begin().await?;
        let status = customer_status_locked(&mut tx, customer_id).await?;
        let found = stored_locked(&mut tx, id).await?;
        versions::check_restore(found.as_ref(), id, customer_id)?;
        let found = found.expect("checked above");
        require_good_standing(customer_id, status.as_deref(), "restore a credential")?;
        let row = sqlx::query(concat!(
            "UPDATE cloud_credentials SET is_active = true, deleted_at = NULL, purge_at = NULL, \
             revision = revision + 1, updated_at = $1 WHERE id = $2 RETURNING ",
            credential_columns!()
        ))
        .bind(now)
        .bind(id.as_uuid())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            let taken = Taken::CredentialName {
                customer: customer_id,
                provider: found.provider,
                name: found.name.as_str(),
            };
            conflict_on_unique(e, taken)
        })?;
        let credential = rows::metadata(&row)?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
        tx.commit().await?;
        Ok(credential)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(credential_id = %id, customer_id = %customer_id))]
    async fn purge_credential(
        &self,
        id: CredentialId,
        customer_id: CustomerId,
        reason: PurgeReason,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<Option<CredentialMetadata>, StoreError> {
        let now = to_stored_precision(now);
        let mut tx = self.pool.begin().await?;
        // Locked: of several instances' purgers finding it due, one purges, the others then see
        // it purged and leave it.
        let found = stored_locked(&mut tx, id).await?;
        if !versions::check_purge(found.as_ref(), id, customer_id, reason)? {
            return Ok(None);
        }
        sqlx::query(
            "UPDATE credential_versions SET state = 'destroyed', encrypted_credentials = NULL, key_version = NULL, \
             destroyed_at = coalesce(destroyed_at, $1) WHERE credential_id = $2",
        )
        .bind(now)
        .bind(id.as_uuid())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(concat!(
            "UPDATE cloud_credentials SET is_active = false, is_default = false, deleted_at = coalesce(deleted_at, $1), \
             purge_at = NULL, purged_at = $1, current_version = NULL, rotated_at = NULL, \
             revision = revision + 1, updated_at = $1 WHERE id = $2 RETURNING ",
            credential_columns!()
        ))
        .bind(now)
        .bind(id.as_uuid())
        .fetch_one(&mut *tx)
        .await?;
        let credential = rows::metadata(&row)?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
        tx.commit().await?;
        Ok(Some(credential))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn due_for_purge(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<CredentialMetadata>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM cloud_credentials WHERE purge_at IS NOT NULL AND purge_at <= $1 AND purged_at IS NULL \
             AND NOT is_active ORDER BY purge_at LIMIT $2"
        ))
        .bind(to_stored_precision(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::metadata).collect()
    }
}

/// A credential as stored, active or not, locked until the transaction ends.
async fn stored_locked(
    tx: &mut Transaction<'_, Postgres>,
    id: CredentialId,
) -> Result<Option<CredentialMetadata>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        credential_columns!(),
        " FROM cloud_credentials WHERE id = $1 FOR UPDATE"
    ))
    .bind(id.as_uuid())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(rows::metadata).transpose()
}
