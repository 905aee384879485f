//! The SQLite backend's master-key records, the rewrap's reads and writes, and job leases.
//! Writes run on the one writer connection, so each is serialized against every other write.

use super::*;
use crate::store::keys::{check_retirable, unrecorded};
use crate::store::{Checkpoint, KeyCheck, KeyStore, KeyUsage, MakeCurrent, RewrappedDataKey, WrappedDataKey};

#[async_trait]
impl KeyStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn check_key(&self, version: u32, check_value: &[u8; 32]) -> Result<KeyCheck, StoreError> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = super::writer::begin_write(&mut writer).await?;
        let stored: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT check_value FROM encryption_keys WHERE version = ?")
                .bind(i64::from(version))
                .fetch_optional(&mut *tx)
                .await?;
        let outcome = match stored {
            Some(stored) if stored == check_value => KeyCheck::Matches,
            Some(_) => KeyCheck::Mismatch,
            None => {
                sqlx::query(
                    "INSERT INTO encryption_keys (version, check_value, created_at) VALUES (?, ?, ?)",
                )
                .bind(i64::from(version))
                .bind(check_value.as_slice())
                .bind(micros(OffsetDateTime::now_utc()))
                .execute(&mut *tx)
                .await?;
                KeyCheck::Recorded
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn key_usage(&self) -> Result<Vec<KeyUsage>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, created_at, \
             (SELECT count(*) FROM credential_versions v WHERE v.key_version = k.version) AS data_keys, \
             (SELECT count(*) FROM customer_keys c WHERE c.key_version = k.version) AS customer_keys, \
             made_current_at, retired_at FROM encryption_keys k \
             UNION ALL SELECT key_version AS version, NULL AS created_at, count(*) AS data_keys, \
             0 AS customer_keys, NULL AS made_current_at, NULL AS retired_at FROM credential_versions WHERE key_version IS NOT NULL \
             AND key_version NOT IN (SELECT version FROM encryption_keys) GROUP BY key_version \
             ORDER BY version",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::key_usage).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn key_usage_present(&self) -> Result<Vec<KeyUsage>, StoreError> {
        let rows = sqlx::query(crate::store::sql::KEY_USAGE_PRESENT).fetch_all(&self.reader).await?;
        rows.iter().map(rows::key_usage).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn current_key(&self) -> Result<Option<u32>, StoreError> {
        let current: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM encryption_keys WHERE current_rank IS NOT NULL \
             ORDER BY current_rank DESC LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        current
            .map(|v| u32::try_from(v).map_err(|_| rows::corrupt("key version", &v.to_string())))
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn first_key(&self) -> Result<Option<u32>, StoreError> {
        let first: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM encryption_keys WHERE current_rank IS NOT NULL ORDER BY current_rank LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        first.map(|v| u32::try_from(v).map_err(|_| rows::corrupt("key version", &v.to_string()))).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(version))]
    async fn make_key_current(
        &self,
        version: u32,
        rule: MakeCurrent,
        audit: Option<AuditEntry>,
        now: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = AuditedTx::begin(&mut writer).await?;
        let changed = sqlx::query(
            "UPDATE encryption_keys SET \
             current_rank = (SELECT coalesce(max(current_rank), 0) + 1 FROM encryption_keys), \
             made_current_at = ?2 \
             WHERE version = ?1 AND (?3 OR NOT EXISTS (SELECT 1 FROM encryption_keys WHERE current_rank IS NOT NULL))",
        )
        .bind(i64::from(version))
        .bind(micros(now))
        .bind(rule == MakeCurrent::Rotate)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let current: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM encryption_keys WHERE current_rank IS NOT NULL \
             ORDER BY current_rank DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(current) = current else {
            return Err(unrecorded(version));
        };
        if changed == 1
            && let Some(audit) = &audit
        {
            insert_audit(&mut tx, self.signer(), audit, now).await?;
        }
        if rule == MakeCurrent::Rotate && changed == 0 {
            return Err(unrecorded(version));
        }
        tx.commit().await?;
        u32::try_from(current).map_err(|_| rows::corrupt("key version", &current.to_string()))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(version))]
    async fn retire_key(
        &self,
        version: u32,
        checkpoint: Checkpoint,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = AuditedTx::begin(&mut writer).await?;
        let retired: Option<Option<i64>> =
            sqlx::query_scalar("SELECT retired_at FROM encryption_keys WHERE version = ?")
                .bind(i64::from(version))
                .fetch_optional(&mut *tx)
                .await?;
        check_retirable(version, retired)?;
        sqlx::query("UPDATE encryption_keys SET retired_at = ? WHERE version = ?")
            .bind(micros(now))
            .bind(i64::from(version))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, mac, retired_version, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(checkpoint.seq)
        .bind(&checkpoint.hash)
        .bind(&checkpoint.mac)
        .bind(i64::from(checkpoint.retired_version))
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn data_keys_to_rewrap(
        &self,
        except: Option<u32>,
        after: Option<(CredentialId, VersionNumber)>,
        limit: u32,
    ) -> Result<Vec<WrappedDataKey>, StoreError> {
        let (id, version) = after.map_or((String::new(), 0), |(id, v)| (id.to_string(), i64::from(v)));
        let rows = sqlx::query(
            // The page first, then its credentials (as on PostgreSQL, whose planner needs it).
            "SELECT v.credential_id, c.customer_id, c.provider, v.version, v.key_version, v.encrypted_credentials \
             FROM (SELECT credential_id, version, key_version, encrypted_credentials FROM credential_versions \
                   WHERE (credential_id, version) > (?1, ?2) \
                   AND key_version IS NOT NULL AND key_version <> ?3 AND encrypted_credentials IS NOT NULL \
                   ORDER BY credential_id, version LIMIT ?4) v \
             JOIN cloud_credentials c ON c.id = v.credential_id ORDER BY v.credential_id, v.version",
        )
        .bind(id)
        .bind(version)
        // No stored version is negative: -1 excepts none.
        .bind(except.map_or(-1, i64::from))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::wrapped_data_key).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(keys = moved.len()))]
    async fn replace_wrapped(&self, moved: &[RewrappedDataKey]) -> Result<u64, StoreError> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = super::writer::begin_write(&mut writer).await?;
        let mut written = 0;
        for key in moved {
            written += sqlx::query(
                "UPDATE credential_versions SET encrypted_credentials = ?, key_version = ? \
                 WHERE credential_id = ? AND version = ? AND key_version = ? AND encrypted_credentials IS NOT NULL",
            )
            .bind(key.sealed.as_slice())
            .bind(key.key_version.map(i64::from))
            .bind(key.credential_id.to_string())
            .bind(i64::from(key.version))
            .bind(i64::from(key.old_key_version))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(written)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(job))]
    async fn take_lease(
        &self,
        job: &str,
        holder: Uuid,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let held = sqlx::query(
            "INSERT INTO job_leases (name, holder, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE job_leases.holder = excluded.holder OR job_leases.expires_at < ?4",
        )
        .bind(job)
        .bind(holder.to_string())
        .bind(micros(until))
        .bind(micros(now))
        .execute(&mut **self.writer.acquire().await?)
        .await?
        .rows_affected();
        Ok(held == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(job))]
    async fn release_lease(&self, job: &str, holder: Uuid) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM job_leases WHERE name = ? AND holder = ?")
            .bind(job)
            .bind(holder.to_string())
            .execute(&mut **self.writer.acquire().await?)
            .await?;
        Ok(())
    }
}
