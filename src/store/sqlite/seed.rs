//! The SQLite backend's bulk seeding (see [`crate::store::seed`]): a batch is one transaction of
//! prepared statements on a connection of its own, holding the writer's turn; the WAL is emptied
//! into the file after each, so that it does not grow by a batch's size every time.

use rusqlite::params;

use super::committer::{open_connection, store_error};
use super::*;
use crate::store::seed::{SeedBatch, SeedStore};

#[async_trait]
impl SeedStore for SqliteStore {
    async fn seed(&self, batch: SeedBatch) -> Result<(), StoreError> {
        let _turn = self.writer.acquire().await?;
        let database = self.database.clone();
        tokio::task::spawn_blocking(move || write(&database, &batch))
            .await
            .map_err(|e| StoreError::Other(format!("the seeding thread failed: {e}").into()))?
    }
}

fn write(database: &std::path::Path, batch: &SeedBatch) -> Result<(), StoreError> {
    let mut connection = open_connection(database)?;
    // The index pages a batch adds to (a customer's credentials, active names) stay in memory
    // for the rest of the batch.
    connection.execute_batch("PRAGMA cache_size = -131072").map_err(store_error)?;
    let tx = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(store_error)?;
    {
        let mut customer = tx
            .prepare(
                "INSERT INTO customers (id, email, company_name, status, subscription_tier, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .map_err(store_error)?;
        for c in &batch.customers {
            customer
                .execute(params![
                    c.id.to_string(),
                    c.email,
                    c.company_name,
                    c.status.as_str(),
                    c.tier.as_str(),
                    micros(c.created_at)
                ])
                .map_err(store_error)?;
        }
        let mut credential = tx
            .prepare(
                "INSERT INTO cloud_credentials (id, customer_id, provider, credential_name, credential_type, \
                 permissions, is_active, is_verified, last_verified_at, last_used_at, usage_count, created_at, \
                 updated_at, current_version, latest_version, rotated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9, ?10, ?11, ?12, 1, 1, ?11)",
            )
            .map_err(store_error)?;
        let mut version = tx
            .prepare(
                "INSERT INTO credential_versions (credential_id, version, state, encrypted_credentials, \
                 key_version, created_at) VALUES (?, 1, 'enabled', ?, ?, ?)",
            )
            .map_err(store_error)?;
        for c in &batch.credentials {
            let id = c.id.to_string();
            credential
                .execute(params![
                    id,
                    c.customer_id.to_string(),
                    c.provider.as_str(),
                    c.name.as_str(),
                    c.credential_type.as_str(),
                    c.permissions.as_str(),
                    c.is_verified,
                    c.last_verified_at.map(micros),
                    c.last_used_at.map(micros),
                    c.usage_count,
                    micros(c.created_at),
                    micros(c.updated_at),
                ])
                .map_err(store_error)?;
            version
                .execute(params![id, c.sealed, c.key_version.map(i64::from), micros(c.created_at)])
                .map_err(store_error)?;
        }
        let mut audit = tx
            .prepare(
                "INSERT INTO credential_audit_log (id, credential_id, customer_id, action, action_details, \
                 ip_address, actor, created_at, row_mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .map_err(store_error)?;
        let mut link = tx
            .prepare("INSERT INTO audit_chain (seq, audit_id, hash) VALUES (?, ?, ?)")
            .map_err(store_error)?;
        let mut last_rowid = 0;
        for (row, l) in &batch.audit {
            let e = &row.event;
            last_rowid = audit
                .insert(params![
                    e.id.to_string(),
                    e.credential_id.map(|c| c.to_string()),
                    e.customer_id.map(|c| c.to_string()),
                    e.action,
                    e.details,
                    e.ip_address,
                    e.actor,
                    micros(e.created_at),
                    row.row_mac,
                ])
                .map_err(store_error)?;
            link.execute(params![l.seq, l.audit_id.to_string(), l.hash]).map_err(store_error)?;
        }
        if !batch.audit.is_empty() {
            // The sealer's next pass starts after the last row sealed here.
            let head = &batch.head;
            tx.execute(
                "UPDATE audit_seal SET seq = ?, hash = ?, mac = ?, next_rowid = ?, updated_at = ? WHERE id = 1",
                params![head.seq, head.hash, head.mac, last_rowid, micros(OffsetDateTime::now_utc())],
            )
            .map_err(store_error)?;
        }
    }
    tx.commit().map_err(store_error)?;
    connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(store_error)?;
    Ok(())
}
