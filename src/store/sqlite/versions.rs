//! The SQLite backend's credential versions: adding one (rotation), changing a version's state,
//! listing them. Each change runs in one writer transaction, which also serializes it against
//! every other write, so the checks it reads first still hold when it commits.

use super::*;
use crate::store::VersionStore;
use crate::store::standing::require_good_standing;
use crate::store::versions::{self, NewVersion, VersionAdded, VersionChanged, VersionHead, VersionUpdate};

#[async_trait]
impl VersionStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(credential_id = %new.credential_id))]
    async fn add_version(&self, new: NewVersion, audit: AuditEntry) -> Result<VersionAdded, StoreError> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = AuditedTx::begin(&mut writer).await?;
        let id = new.credential_id.to_string();

        if let Some((key, _)) = &new.idempotency {
            let existing = sqlx::query(
                concat!(
                    "SELECT ",
                    version_columns!(),
                    ", request_fingerprint FROM credential_versions WHERE credential_id = ? AND idempotency_key = ?"
                ),
            )
            .bind(&id)
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = existing {
                let credential = credential_in(&mut tx, &id).await?;
                return Ok(VersionAdded::Existing {
                    credential,
                    version: rows::version(&row)?,
                    fingerprint: row.optional_bytes("request_fingerprint")?.unwrap_or_default(),
                });
            }
        }

        let head = head_in(&mut tx, &id).await?;
        let head = VersionHead::check(head, new.credential_id, new.customer_id, new.expected)?;
        let status = super::credentials::customer_status_in(&mut tx, new.customer_id).await?;
        require_good_standing(new.customer_id, status.as_deref(), "add a version")?;
        head.check_next(new.version)?;
        if new.disable_previous
            && let Some(previous) = head.current_version
        {
            sqlx::query(
                "UPDATE credential_versions SET state = 'disabled' \
                 WHERE credential_id = ? AND version = ? AND state = 'enabled'",
            )
            .bind(&id)
            .bind(i64::from(previous))
            .execute(&mut *tx)
            .await?;
        }
        let (idempotency_key, fingerprint) = match &new.idempotency {
            Some((key, fingerprint)) => (Some(key.as_str()), Some(fingerprint.as_slice())),
            None => (None, None),
        };
        let version = sqlx::query(concat!(
            "INSERT INTO credential_versions (credential_id, version, state, encrypted_credentials, key_version, \
             created_by, idempotency_key, request_fingerprint, created_at) \
             VALUES (?, ?, 'enabled', ?, ?, ?, ?, ?, ?) \
             RETURNING ",
            version_columns!()
        ))
        .bind(&id)
        .bind(i64::from(new.version))
        .bind(new.sealed.as_slice())
        .bind(new.key_version.map(i64::from))
        .bind(new.created_by.as_ref().map(TokenName::as_str))
        .bind(idempotency_key)
        .bind(fingerprint)
        .bind(micros(new.now))
        .fetch_one(&mut *tx)
        .await?;
        let row = sqlx::query(returning_credential!(
            "UPDATE cloud_credentials SET latest_version = ?1, current_version = ?1, rotated_at = ?2, \
             revision = revision + 1, updated_at = ?2, \
             is_verified = 0, last_verified_at = NULL, verified_identity = NULL, verification_findings = NULL, \
             verification_failures = 0, first_failed_at = NULL, failing_since = NULL, next_verify_at = 0 \
             WHERE id = ?3"
        ))
        .bind(i64::from(new.version))
        .bind(micros(new.now))
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
        let credential = rows::metadata(&row)?;
        insert_audit(&mut tx, self.signer(), &audit, new.now).await?;
        tx.commit().await?;
        Ok(VersionAdded::Added { credential, version: rows::version(&version)? })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(credential_id = %update.credential_id, version = update.version))]
    async fn change_version(
        &self,
        update: VersionUpdate,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<VersionChanged, StoreError> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = AuditedTx::begin(&mut writer).await?;
        let id = update.credential_id.to_string();
        let head = head_in(&mut tx, &id).await?;
        VersionHead::check(head, update.credential_id, update.customer_id, update.expected)?;
        let row = sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM credential_versions WHERE credential_id = ? AND version = ?"
        ))
        .bind(&id)
        .bind(i64::from(update.version))
        .fetch_optional(&mut *tx)
        .await?;
        let from = row.as_ref().map(rows::version).transpose()?;
        if !versions::decide(&update, from.as_ref().map(|v| v.state))? {
            let credential = credential_in(&mut tx, &id).await?;
            let version = from.expect("decide refuses a missing version");
            return Ok(VersionChanged { credential, version, changed: false });
        }
        let destroy = update.change == VersionChange::Destroy;
        let version = sqlx::query(concat!(
            "UPDATE credential_versions SET state = ?1, \
             encrypted_credentials = CASE WHEN ?2 THEN NULL ELSE encrypted_credentials END, \
             key_version = CASE WHEN ?2 THEN NULL ELSE key_version END, \
             destroyed_at = CASE WHEN ?2 THEN ?3 ELSE destroyed_at END \
             WHERE credential_id = ?4 AND version = ?5 \
             RETURNING ",
            version_columns!()
        ))
        .bind(update.change.target().as_str())
        .bind(destroy)
        .bind(micros(now))
        .bind(&id)
        .bind(i64::from(update.version))
        .fetch_one(&mut *tx)
        .await?;
        let row = sqlx::query(returning_credential!(
            "UPDATE cloud_credentials SET \
             current_version = (SELECT max(version) FROM credential_versions \
               WHERE credential_id = ?1 AND state = 'enabled'), \
             rotated_at = (SELECT created_at FROM credential_versions WHERE credential_id = ?1 AND version = \
               (SELECT max(version) FROM credential_versions WHERE credential_id = ?1 AND state = 'enabled')), \
             revision = revision + 1, updated_at = ?2 WHERE id = ?1"
        ))
        .bind(&id)
        .bind(micros(now))
        .fetch_one(&mut *tx)
        .await?;
        let credential = rows::metadata(&row)?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
        tx.commit().await?;
        Ok(VersionChanged { credential, version: rows::version(&version)?, changed: true })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(credential_id = %id))]
    async fn list_versions(
        &self,
        id: CredentialId,
        before: Option<VersionNumber>,
        limit: u32,
    ) -> Result<Vec<VersionMetadata>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM credential_versions WHERE credential_id = ? AND version < ? ORDER BY version DESC LIMIT ?"
        ))
        .bind(id.to_string())
        .bind(before.map_or(i64::MAX, i64::from))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::version).collect()
    }
}

/// What the version operations check, in the transaction (`None`: no active credential).
pub(super) async fn head_in(tx: &mut AuditedTx<'_>, id: &str) -> Result<Option<VersionHead>, StoreError> {
    let row = sqlx::query(
        "SELECT customer_id, provider, current_version, latest_version, revision FROM cloud_credentials \
         WHERE id = ? AND is_active = 1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(rows::version_head).transpose()
}

/// The credential's metadata as it stands in the transaction, its uses counted.
async fn credential_in(tx: &mut AuditedTx<'_>, id: &str) -> Result<CredentialMetadata, StoreError> {
    // The transaction moved the journal into the stored counts when it began.
    let row = sqlx::query(select_credentials!("FROM cloud_credentials WHERE id = ?"))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    rows::metadata(&row)
}
