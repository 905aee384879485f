//! The PostgreSQL backend's master-key records, the rewrap's reads and writes, and job leases.

use super::*;
use crate::store::keys::{check_retirable, unrecorded};
use crate::store::{Checkpoint, KeyCheck, KeyStore, KeyUsage, MakeCurrent, RewrappedDataKey, WrappedDataKey};

/// The current version: the one last made current.
const CURRENT: &str = "SELECT version::bigint FROM encryption_keys WHERE current_rank IS NOT NULL \
                       ORDER BY current_rank DESC LIMIT 1";

#[async_trait]
impl KeyStore for PostgresStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn check_key(&self, version: u32, check_value: &[u8; 32]) -> Result<KeyCheck, StoreError> {
        let version = key_version(version)?;
        // ON CONFLICT makes concurrent first starts agree: exactly one inserts, all compare.
        let inserted = sqlx::query(
            "INSERT INTO encryption_keys (version, check_value, created_at) VALUES ($1, $2, now()) \
             ON CONFLICT (version) DO NOTHING",
        )
        .bind(version)
        .bind(check_value.as_slice())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(KeyCheck::Recorded);
        }
        let stored: Vec<u8> =
            sqlx::query_scalar("SELECT check_value FROM encryption_keys WHERE version = $1")
                .bind(version)
                .fetch_one(&self.pool)
                .await?;
        Ok(if stored == check_value { KeyCheck::Matches } else { KeyCheck::Mismatch })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn key_usage(&self) -> Result<Vec<KeyUsage>, StoreError> {
        let rows = sqlx::query(
            "SELECT version::bigint AS version, created_at, \
             (SELECT count(*) FROM credential_versions v WHERE v.key_version = k.version) AS data_keys, \
             (SELECT count(*) FROM customer_keys c WHERE c.key_version = k.version) AS customer_keys, \
             made_current_at, retired_at FROM encryption_keys k \
             UNION ALL SELECT key_version AS version, NULL::timestamptz AS created_at, count(*) AS data_keys, \
             0::bigint AS customer_keys, NULL::timestamptz AS made_current_at, NULL::timestamptz AS retired_at FROM credential_versions WHERE key_version IS NOT NULL \
             AND key_version NOT IN (SELECT version FROM encryption_keys) GROUP BY key_version \
             ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::key_usage).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn key_usage_present(&self) -> Result<Vec<KeyUsage>, StoreError> {
        let rows = sqlx::query(crate::store::sql::KEY_USAGE_PRESENT).fetch_all(&self.pool).await?;
        rows.iter().map(rows::key_usage).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn current_key(&self) -> Result<Option<u32>, StoreError> {
        let current: Option<i64> = sqlx::query_scalar(CURRENT).fetch_optional(&self.pool).await?;
        current.map(stored_key_version).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn first_key(&self) -> Result<Option<u32>, StoreError> {
        let first: Option<i64> = sqlx::query_scalar(
            "SELECT version::bigint FROM encryption_keys WHERE current_rank IS NOT NULL ORDER BY current_rank LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        first.map(stored_key_version).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(version))]
    async fn make_key_current(
        &self,
        version: u32,
        rule: MakeCurrent,
        audit: Option<AuditEntry>,
        now: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        let mut tx = self.pool.begin().await?;
        // One change at a time: the rank after the highest is taken under this lock.
        sqlx::query("LOCK TABLE encryption_keys IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
        let changed = sqlx::query(
            "UPDATE encryption_keys SET \
             current_rank = (SELECT coalesce(max(current_rank), 0) + 1 FROM encryption_keys), \
             made_current_at = $2 \
             WHERE version = $1 AND ($3 OR NOT EXISTS (SELECT 1 FROM encryption_keys WHERE current_rank IS NOT NULL))",
        )
        .bind(key_version(version)?)
        .bind(now)
        .bind(rule == MakeCurrent::Rotate)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let current: Option<i64> = sqlx::query_scalar(CURRENT).fetch_optional(&mut *tx).await?;
        let Some(current) = current else {
            return Err(unrecorded(version));
        };
        if rule == MakeCurrent::Rotate && changed == 0 {
            return Err(unrecorded(version));
        }
        if changed == 1
            && let Some(audit) = &audit
        {
            insert_audit(&mut tx, self.signer(), audit, now).await?;
        }
        tx.commit().await?;
        stored_key_version(current)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(version))]
    async fn retire_key(
        &self,
        version: u32,
        checkpoint: Checkpoint,
        audit: AuditEntry,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let retired: Option<Option<OffsetDateTime>> =
            sqlx::query_scalar("SELECT retired_at FROM encryption_keys WHERE version = $1 FOR UPDATE")
                .bind(key_version(version)?)
                .fetch_optional(&mut *tx)
                .await?;
        check_retirable(version, retired)?;
        sqlx::query("UPDATE encryption_keys SET retired_at = $1 WHERE version = $2")
            .bind(now)
            .bind(key_version(version)?)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, mac, retired_version, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(checkpoint.seq)
        .bind(&checkpoint.hash)
        .bind(&checkpoint.mac)
        .bind(key_version(checkpoint.retired_version)?)
        .bind(now)
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
        let (id, version) = after.map_or((Uuid::nil(), 0), |(id, v)| (*id.as_uuid(), i64::from(v)));
        let rows = sqlx::query(
            // The page first, then its credentials: joined before the LIMIT, the planner merges
            // with every credential up to the cursor, so each page cost more than the last.
            "SELECT v.credential_id, c.customer_id, c.provider, v.version::bigint AS version, \
             v.key_version::bigint AS key_version, v.encrypted_credentials \
             FROM (SELECT credential_id, version, key_version, encrypted_credentials FROM credential_versions \
                   WHERE (credential_id, version) > ($1, $2) \
                   AND key_version IS NOT NULL AND key_version <> $3 AND encrypted_credentials IS NOT NULL \
                   ORDER BY credential_id, version LIMIT $4) v \
             JOIN cloud_credentials c ON c.id = v.credential_id ORDER BY v.credential_id, v.version",
        )
        .bind(id)
        .bind(version)
        // No stored version is negative: -1 excepts none.
        .bind(except.map_or(-1, i64::from))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::wrapped_data_key).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(keys = moved.len()))]
    async fn replace_wrapped(&self, moved: &[RewrappedDataKey]) -> Result<u64, StoreError> {
        if moved.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = moved.iter().map(|k| *k.credential_id.as_uuid()).collect();
        let versions: Vec<i64> = moved.iter().map(|k| i64::from(k.version)).collect();
        let old: Vec<i64> = moved.iter().map(|k| i64::from(k.old_key_version)).collect();
        let sealed: Vec<&[u8]> = moved.iter().map(|k| k.sealed.as_slice()).collect();
        let new: Vec<Option<i64>> = moved.iter().map(|k| k.key_version.map(i64::from)).collect();
        let written = sqlx::query(
            "UPDATE credential_versions v SET encrypted_credentials = m.sealed, key_version = m.new \
             FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bytea[], $5::bigint[]) \
             AS m(credential_id, version, old, sealed, new) \
             WHERE v.credential_id = m.credential_id AND v.version = m.version AND v.key_version = m.old \
             AND v.encrypted_credentials IS NOT NULL",
        )
        .bind(ids)
        .bind(versions)
        .bind(old)
        .bind(sealed)
        .bind(new)
        .execute(&self.pool)
        .await?
        .rows_affected();
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
            "INSERT INTO job_leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE job_leases.holder = excluded.holder OR job_leases.expires_at < $4",
        )
        .bind(job)
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(held == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(job))]
    async fn release_lease(&self, job: &str, holder: Uuid) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM job_leases WHERE name = $1 AND holder = $2")
            .bind(job)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

pub(super) fn key_version(version: u32) -> Result<i32, StoreError> {
    i32::try_from(version).map_err(|_| StoreError::Config(format!("key version {version} is too large")))
}

fn stored_key_version(version: i64) -> Result<u32, StoreError> {
    u32::try_from(version).map_err(|_| rows::corrupt("key version", &version.to_string()))
}
