//! The SQLite backend's credentials: Store, Get's read and audited use, verification, listing, soft delete.

use super::*;
use crate::domain::{
    CredentialName, CredentialType, Permission, ProviderCounts, VerificationRecord, VerificationState,
};
use crate::store::sql::ListStatements;
use crate::store::standing::require_good_standing;
use crate::store::versions::{self, VersionHead};
use crate::store::{CredentialStore, CredentialUpdate, PurgeReason};

/// The columns Get reads beside the metadata of a credential in `$table`: version `$version`
/// (a parameter; NULL for the current version), its state and ciphertext, and the customer's
/// status.
macro_rules! served_version {
    ($table:literal, $version:literal) => {
        concat!(
            ", coalesce(",
            $version,
            ", current_version) AS served_version, ",
            "(SELECT state FROM credential_versions v WHERE v.credential_id = ",
            $table,
            ".id ",
            "AND v.version = coalesce(",
            $version,
            ", ",
            $table,
            ".current_version)) AS version_state, ",
            "(SELECT encrypted_credentials FROM credential_versions v WHERE v.credential_id = ",
            $table,
            ".id ",
            "AND v.version = coalesce(",
            $version,
            ", ",
            $table,
            ".current_version)) AS encrypted_credentials, ",
            "(SELECT status FROM customers WHERE customers.id = ",
            $table,
            ".customer_id) AS customer_status"
        )
    };
}

/// An active credential by id (`?1`) with the version Get serves (`?2`: a number, or NULL for
/// the current one); read in groups (`get_reads`).
pub(super) const BY_ID: &str = concat!(
    select_credentials_counting_journal!("credential_id = ?1",),
    served_version!("credentials", "?2"),
    " FROM credentials WHERE id = ?1 AND is_active = 1"
);

#[async_trait]
impl CredentialStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(credential_id = %new.id, customer_id = %new.customer_id))]
    async fn insert_credential(&self, new: NewCredential, audit: AuditEntry) -> Result<Inserted, StoreError> {
        if !new.make_default {
            let store =
                Arc::new(crate::store::group_commit::NewStore { new: new.clone(), audit: audit.clone() });
            if let Some(created) = self.stores.submit(store).await? {
                return Ok(Inserted::Created(created));
            }
            // Left out of the group: on its own, for the precise answer.
        }
        // The single writer connection serializes this whole transaction against every other
        // write, so the checks below cannot race with a concurrent insert.
        let mut writer = self.writer.acquire().await?;
        let mut tx = AuditedTx::begin(&mut writer).await?;

        if let Some((key, _)) = &new.idempotency {
            let existing = sqlx::query(select_credentials!(
                ", request_fingerprint FROM cloud_credentials WHERE customer_id = ? AND idempotency_key = ?"
            ))
            .bind(new.customer_id.to_string())
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = existing {
                // It may have committed in a group whose sync is still under way: it is durable
                // before this caller hears of it.
                self.sync_wal().await?;
                return Ok(Inserted::Existing {
                    credential: rows::metadata(&row)?,
                    fingerprint: row
                        .try_get::<Option<Vec<u8>>, _>("request_fingerprint")?
                        .unwrap_or_default(),
                });
            }
        }

        let status = customer_status_in(&mut tx, new.customer_id).await?;
        require_good_standing(new.customer_id, status.as_deref(), "store a credential")?;

        if new.make_default {
            sqlx::query(
                "UPDATE cloud_credentials SET is_default = 0, updated_at = ?, revision = revision + 1 \
                 WHERE customer_id = ? AND provider = ? AND is_default = 1",
            )
            .bind(micros(new.now))
            .bind(new.customer_id.to_string())
            .bind(new.provider.as_str())
            .execute(&mut *tx)
            .await?;
        }

        let (idempotency_key, fingerprint) = match &new.idempotency {
            Some((key, fingerprint)) => (Some(key.as_str()), Some(fingerprint.as_slice())),
            None => (None, None),
        };
        let row = sqlx::query(returning_credential!(
            "INSERT INTO cloud_credentials (id, customer_id, provider, credential_name, credential_type, \
             permissions, is_default, idempotency_key, request_fingerprint, created_at, updated_at, \
             current_version, latest_version, rotated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, 1, 1, ?10)"
        ))
        .bind(new.id.to_string())
        .bind(new.customer_id.to_string())
        .bind(new.provider.as_str())
        .bind(new.name.as_str())
        .bind(new.credential_type.as_str())
        .bind(new.permissions.as_str())
        .bind(new.make_default)
        .bind(idempotency_key)
        .bind(fingerprint)
        .bind(micros(new.now))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            let taken = Taken::CredentialName {
                customer: new.customer_id,
                provider: new.provider,
                name: new.name.as_str(),
            };
            conflict_on_unique(e, taken)
        })?;
        sqlx::query(super::stores::INSERT_FIRST_VERSION)
            .bind(new.id.to_string())
            .bind(new.sealed.as_slice())
            .bind(new.key_version.map(i64::from))
            .bind(audit.actor.as_ref().map(TokenName::as_str))
            .bind(micros(new.now))
            .execute(&mut *tx)
            .await?;
        let credential = rows::metadata(&row)?;
        insert_audit(&mut tx, self.signer(), &audit, new.now).await?;
        tx.commit().await?;
        Ok(Inserted::Created(credential))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn fetch_sealed(
        &self,
        selector: CredentialSelector,
        version: Option<VersionNumber>,
    ) -> Result<Option<SealedCredential>, StoreError> {
        let version = version.map(i64::from);
        let row = match selector {
            CredentialSelector::Id(id) => return self.get_reads.submit((id, version)).await?,
            // Only Get selects by provider, and it answers with the usage `record_use` returns:
            // the journal is not scanned on every such Get.
            CredentialSelector::Preferred { customer_id, provider } => {
                sqlx::query(concat!(
                    select_credentials!(),
                    served_version!("cloud_credentials", "?3"),
                    " FROM cloud_credentials WHERE customer_id = ?1 AND provider = ?2 AND is_active = 1 \
                     ORDER BY current_version IS NOT NULL DESC, is_default DESC, is_verified DESC, created_at DESC, \
                     id DESC LIMIT 1"
                ))
                .bind(customer_id.to_string())
                .bind(provider.as_str())
                .bind(version)
                .fetch_optional(&self.reader)
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
        // SET expressions read the row as it was before this UPDATE.
        let change = sqlx::query(returning_credential!(
            "UPDATE cloud_credentials SET is_verified = ?1, last_verified_at = ?2, updated_at = ?2, \
             verified_identity = CASE WHEN ?1 THEN ?3 ELSE verified_identity END, \
             verification_findings = ?4, \
             verification_failures = CASE WHEN ?1 THEN 0 ELSE verification_failures + 1 END, \
             first_failed_at = CASE WHEN ?1 THEN NULL ELSE coalesce(first_failed_at, ?2) END, \
             failing_since = CASE WHEN ?1 THEN NULL \
               WHEN verification_failures + 1 >= ?5 THEN coalesce(first_failed_at, ?2) END \
             WHERE id = ?6 AND is_active = 1 AND current_version = ?7"
        ))
        .bind(record.valid)
        .bind(micros(record.now))
        .bind(rows::identity_json(&record.identity))
        .bind(rows::findings_json(&record.findings))
        .bind(i64::from(record.failing_after))
        .bind(id.to_string())
        .bind(i64::from(record.version));
        self.audited_change(change, id, &audit, record.now).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn claim_due_verifications(
        &self,
        now: OffsetDateTime,
        interval: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<(CredentialId, Provider)>, StoreError> {
        let (least, spread) = crate::store::sql::verify_jitter(interval);
        let mut writer = self.writer.acquire().await?;
        let rows = sqlx::query(
            "UPDATE cloud_credentials SET next_verify_at = ?1 + ?2 + abs(random() % ?3) \
             WHERE id IN (SELECT id FROM cloud_credentials WHERE is_active = 1 AND next_verify_at <= ?1 \
               ORDER BY next_verify_at LIMIT ?4) \
             RETURNING id, provider",
        )
        .bind(micros(now))
        .bind(least)
        .bind(spread)
        .bind(i64::from(limit))
        .fetch_all(&mut **writer)
        .await?;
        rows.iter().map(rows::claimed_verification).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn defer_verifications(&self, ids: &[CredentialId], at: OffsetDateTime) -> Result<(), StoreError> {
        let ids = serde_json::to_string(&ids.iter().map(ToString::to_string).collect::<Vec<_>>())
            .expect("a list of strings serializes");
        let mut writer = self.writer.acquire().await?;
        sqlx::query(
            "UPDATE cloud_credentials SET next_verify_at = ?1 WHERE id IN (SELECT value FROM json_each(?2))",
        )
        .bind(micros(at))
        .bind(ids)
        .execute(&mut **writer)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn verification_state_counts(&self) -> Result<Vec<(VerificationState, i64)>, StoreError> {
        let rows = sqlx::query(crate::store::sql::VERIFICATION_STATE_COUNTS).fetch_all(&self.reader).await?;
        rows::verification_state_counts(&rows)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list(&self, filter: &ListFilter) -> Result<Vec<CredentialMetadata>, StoreError> {
        let (after_created, after_id) = match &filter.after {
            Some(cursor) => (Some(cursor.created_at_micros), Some(cursor.id.to_string())),
            None => (None, None),
        };
        macro_rules! list {
            ($($filter:literal)*) => {
                select_credentials_counting_journal!(
                    "customer_id = ?1",
                    "FROM credentials WHERE customer_id = ?1 AND (?3 OR is_active = 1) "
                    $($filter)*
                    "ORDER BY created_at DESC, id DESC LIMIT ?6"
                )
            };
        }
        const LIST: ListStatements = ListStatements {
            all: list!(),
            by_provider: list!("AND provider = ?2 "),
            after: list!("AND (created_at, id) < (?4, ?5) "),
            by_provider_after: list!("AND provider = ?2 " "AND (created_at, id) < (?4, ?5) "),
        };
        let statement = LIST.pick(filter);
        let rows = sqlx::query(statement)
            .bind(filter.customer_id.to_string())
            .bind(filter.provider.map(Provider::as_str))
            .bind(filter.include_inactive)
            .bind(after_created)
            .bind(after_id)
            .bind(i64::from(filter.page_size) + 1)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(rows::metadata).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %customer_id))]
    async fn summary_counts(&self, customer_id: CustomerId) -> Result<Vec<ProviderCounts>, StoreError> {
        let rows = sqlx::query(crate::store::sql::SUMMARY_COUNTS)
            .bind(customer_id.to_string())
            .fetch_all(&self.reader)
            .await?;
        rows::provider_counts(&rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = %customer_id))]
    async fn all_for_customer(&self, customer_id: CustomerId) -> Result<Vec<CredentialMetadata>, StoreError> {
        let rows = sqlx::query(select_credentials_counting_journal!(
            "customer_id = ?1",
            "FROM credentials WHERE customer_id = ?1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(customer_id.to_string())
        .fetch_all(&self.reader)
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
        let change = sqlx::query(returning_credential!(soft_deleting!("id = ?2")))
            .bind(micros(now))
            .bind(id.to_string());
        self.audited_change(change, id, &audit, now).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(credential_id = %update.id))]
    async fn update_credential(
        &self,
        update: CredentialUpdate,
        audit: AuditEntry,
    ) -> Result<CredentialMetadata, StoreError> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = AuditedTx::begin(&mut writer).await?;
        let id = update.id.to_string();
        let head = super::versions::head_in(&mut tx, &id).await?;
        let head = VersionHead::check(head, update.id, update.customer_id, update.expected)?;
        if update.is_default == Some(true) {
            sqlx::query(
                "UPDATE cloud_credentials SET is_default = 0, updated_at = ?, revision = revision + 1 \
                 WHERE customer_id = ? AND provider = ? AND is_default = 1 AND id <> ?",
            )
            .bind(micros(update.now))
            .bind(update.customer_id.to_string())
            .bind(head.provider.as_str())
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        }
        let row = sqlx::query(returning_credential!(
            "UPDATE cloud_credentials SET credential_name = coalesce(?1, credential_name), \
             credential_type = coalesce(?2, credential_type), permissions = coalesce(?3, permissions), \
             is_default = coalesce(?4, is_default), revision = revision + 1, updated_at = ?5 WHERE id = ?6"
        ))
        .bind(update.name.as_ref().map(CredentialName::as_str))
        .bind(update.credential_type.as_ref().map(CredentialType::as_str))
        .bind(update.permissions.map(Permission::as_str))
        .bind(update.is_default)
        .bind(micros(update.now))
        .bind(&id)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            let name = update.name.as_ref().map_or("", CredentialName::as_str);
            conflict_on_unique(
                e,
                Taken::CredentialName { customer: update.customer_id, provider: head.provider, name },
            )
        })?;
        let credential = rows::metadata(&row)?;
        insert_audit(&mut tx, self.signer(), &audit, update.now).await?;
        tx.commit().await?;
        Ok(credential)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(credential_id = %id))]
    async fn find_credential(&self, id: CredentialId) -> Result<Option<CredentialMetadata>, StoreError> {
        let row = sqlx::query(select_credentials!("FROM cloud_credentials WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
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
        let mut writer = self.writer.acquire().await?;
        let mut tx = AuditedTx::begin(&mut writer).await?;
        let found = stored_in(&mut tx, id).await?;
        versions::check_restore(found.as_ref(), id, customer_id)?;
        let found = found.expect("checked above");
        let status = customer_status_in(&mut tx, customer_id).await?;
        require_good_standing(customer_id, status.as_deref(), "restore a credential")?;
        let row = sqlx::query(returning_credential!(
            "UPDATE cloud_credentials SET is_active = 1, deleted_at = NULL, purge_at = NULL, \
             revision = revision + 1, updated_at = ?1 WHERE id = ?2"
        ))
        .bind(micros(now))
        .bind(id.to_string())
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
        let mut writer = self.writer.acquire().await?;
        let mut tx = AuditedTx::begin(&mut writer).await?;
        let found = stored_in(&mut tx, id).await?;
        if !versions::check_purge(found.as_ref(), id, customer_id, reason)? {
            return Ok(None);
        }
        sqlx::query(
            "UPDATE credential_versions SET state = 'destroyed', encrypted_credentials = NULL, key_version = NULL, \
             destroyed_at = coalesce(destroyed_at, ?1) WHERE credential_id = ?2",
        )
        .bind(micros(now))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(returning_credential!(
            "UPDATE cloud_credentials SET is_active = 0, is_default = 0, deleted_at = coalesce(deleted_at, ?1), \
             purge_at = NULL, purged_at = ?1, current_version = NULL, rotated_at = NULL, \
             revision = revision + 1, updated_at = ?1 WHERE id = ?2"
        ))
        .bind(micros(now))
        .bind(id.to_string())
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
        let rows = sqlx::query(select_credentials!(
            "FROM cloud_credentials WHERE purge_at IS NOT NULL AND purge_at <= ? AND purged_at IS NULL \
             AND is_active = 0 ORDER BY purge_at LIMIT ?"
        ))
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::metadata).collect()
    }
}

/// A credential as stored, active or not, in the transaction.
async fn stored_in(
    tx: &mut AuditedTx<'_>,
    id: CredentialId,
) -> Result<Option<CredentialMetadata>, StoreError> {
    let row = sqlx::query(select_credentials!("FROM cloud_credentials WHERE id = ?"))
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(rows::metadata).transpose()
}

/// The customer's status as the transaction sees it (`None`: no such customer).
pub(super) async fn customer_status_in(
    tx: &mut AuditedTx<'_>,
    customer_id: CustomerId,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar("SELECT status FROM customers WHERE id = ?")
        .bind(customer_id.to_string())
        .fetch_optional(&mut **tx)
        .await?)
}
