//! The PostgreSQL backend's credential versions: adding one (rotation), changing a version's
//! state, listing them. Each change locks the credential's row first (`FOR UPDATE`), so changes
//! of one credential from any instance queue, and the checks read under the lock still hold
//! when the change commits.

use super::*;
use crate::store::VersionStore;
use crate::store::standing::require_good_standing;
use crate::store::versions::{self, NewVersion, VersionAdded, VersionChanged, VersionHead, VersionUpdate};

#[async_trait]
impl VersionStore for PostgresStore {
    #[tracing::instrument(level = "debug", skip_all, fields(credential_id = %new.credential_id))]
    async fn add_version(&self, new: NewVersion, audit: AuditEntry) -> Result<VersionAdded, StoreError> {
        let now = to_stored_precision(new.now);
        let mut tx = self.pool.begin().await?;
        let id = new.credential_id.as_uuid();
        let status = customer_status_locked(&mut tx, new.customer_id).await?;
        let head = head_locked(&mut tx, new.credential_id).await?;

        if let Some((key, _)) = &new.idempotency {
            let existing = sqlx::query(concat!(
                "SELECT ",
                version_columns!(),
                ", request_fingerprint FROM credential_versions WHERE credential_id = $1 AND idempotency_key = $2"
            ))
            .bind(id)
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = existing {
                let credential = credential_in(&mut tx, new.credential_id).await?;
                return Ok(VersionAdded::Existing {
                    credential,
                    version: rows::version(&row)?,
                    fingerprint: row.optional_bytes("request_fingerprint")?.unwrap_or_default(),
                });
            }
        }

        let head = VersionHead::check(head, new.credential_id, new.customer_id, new.expected)?;
        require_good_standing(new.customer_id, status.as_deref(), "add a version")?;
        head.check_next(new.version)?;
        if new.disable_previous
            && let Some(previous) = head.current_version
        {
            sqlx::query(
                "UPDATE credential_versions SET state = 'disabled' \
                 WHERE credential_id = $1 AND version = $2 AND state = 'enabled'",
            )
            .bind(id)
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
             VALUES ($1, $2, 'enabled', $3, $4, $5, $6, $7, $8) RETURNING ",
            version_columns!()
        ))
        .bind(id)
        .bind(i64::from(new.version))
        .bind(new.sealed.as_slice())
        .bind(new.key_version.map(i64::from))
        .bind(new.created_by.as_ref().map(TokenName::as_str))
        .bind(idempotency_key)
        .bind(fingerprint)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let row = sqlx::query(concat!(
            "UPDATE cloud_credentials SET latest_version = $1, current_version = $1, rotated_at = $2, \
             revision = revision + 1, updated_at = $2, \
             is_verified = false, last_verified_at = NULL, verified_identity = NULL, verification_findings = NULL, \
             verification_failures = 0, first_failed_at = NULL, failing_since = NULL, next_verify_at = 'epoch' \
             WHERE id = $3 RETURNING ",
            credential_columns!()
        ))
        .bind(i64::from(new.version))
        .bind(now)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let credential = rows::metadata(&row)?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
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
        let now = to_stored_precision(now);
        let mut tx = self.pool.begin().await?;
        let id = update.credential_id.as_uuid();
        let head = head_locked(&mut tx, update.credential_id).await?;
        VersionHead::check(head, update.credential_id, update.customer_id, update.expected)?;
        let row = sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM credential_versions WHERE credential_id = $1 AND version = $2"
        ))
        .bind(id)
        .bind(i64::from(update.version))
        .fetch_optional(&mut *tx)
        .await?;
        let from = row.as_ref().map(rows::version).transpose()?;
        if !versions::decide(&update, from.as_ref().map(|v| v.state))? {
            let credential = credential_in(&mut tx, update.credential_id).await?;
            let version = from.expect("decide refuses a missing version");
            return Ok(VersionChanged { credential, version, changed: false });
        }
        let destroy = update.change == VersionChange::Destroy;
        let version = sqlx::query(concat!(
            "UPDATE credential_versions SET state = $1, \
             encrypted_credentials = CASE WHEN $2 THEN NULL ELSE encrypted_credentials END, \
             key_version = CASE WHEN $2 THEN NULL ELSE key_version END, \
             destroyed_at = CASE WHEN $2 THEN $3 ELSE destroyed_at END \
             WHERE credential_id = $4 AND version = $5 RETURNING ",
            version_columns!()
        ))
        .bind(update.change.target().as_str())
        .bind(destroy)
        .bind(now)
        .bind(id)
        .bind(i64::from(update.version))
        .fetch_one(&mut *tx)
        .await?;
        let row = sqlx::query(concat!(
            "WITH newest AS (SELECT version, created_at FROM credential_versions \
               WHERE credential_id = $1 AND state = 'enabled' ORDER BY version DESC LIMIT 1) \
             UPDATE cloud_credentials SET current_version = (SELECT version FROM newest), \
             rotated_at = (SELECT created_at FROM newest), revision = revision + 1, updated_at = $2 \
             WHERE id = $1 RETURNING ",
            credential_columns!()
        ))
        .bind(id)
        .bind(now)
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
            " FROM credential_versions WHERE credential_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3"
        ))
        .bind(id.as_uuid())
        .bind(before.map_or(i64::MAX, i64::from))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::version).collect()
    }
}

/// What the version operations check, with the credential's row locked until the transaction
/// ends (`None`: no active credential).
pub(super) async fn head_locked(
    tx: &mut Transaction<'_, Postgres>,
    id: CredentialId,
) -> Result<Option<VersionHead>, StoreError> {
    let row = sqlx::query(
        "SELECT customer_id, provider, current_version, latest_version, revision FROM cloud_credentials \
         WHERE id = $1 AND is_active FOR UPDATE",
    )
    .bind(id.as_uuid())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(rows::version_head).transpose()
}

/// The credential's metadata as it stands in the transaction.
async fn credential_in(
    tx: &mut Transaction<'_, Postgres>,
    id: CredentialId,
) -> Result<CredentialMetadata, StoreError> {
    let row = sqlx::query(concat!("SELECT ", credential_columns!(), " FROM cloud_credentials WHERE id = $1"))
        .bind(id.as_uuid())
        .fetch_one(&mut **tx)
        .await?;
    rows::metadata(&row)
}
