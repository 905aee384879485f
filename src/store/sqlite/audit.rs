//! The SQLite backend's the audit log: appending, listing, chaining and reading the chain.

use std::ops::ControlFlow;

use super::*;
use crate::store::{AuditStore, ChainPart};

#[async_trait]
impl AuditStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn append_audit(&self, audit: AuditEntry, now: OffsetDateTime) -> Result<(), StoreError> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = AuditedTx::begin(&mut writer).await?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        self.move_journal().await?;
        // One credential's events by its index, unless the index cannot answer (see `list`).
        if let Some(index) = &self.by_credential
            && let Some(events) = index.list(filter).await?
        {
            return Ok(events);
        }
        let (at, id) = filter.after.map_or((i64::MAX, String::new()), |c| (c.at_micros, c.id.to_string()));
        // The walk starts at the cursor's time, not at the newest row.
        let before = filter.until.map_or(i64::MAX, micros).min(at.saturating_add(1));
        let rows = sqlx::query(LIST_AUDIT)
            .bind(filter.customer_id.map(|c| c.to_string()))
            .bind(filter.credential_id.map(|c| c.to_string()))
            .bind(filter.action.map(AuditAction::as_str))
            .bind(filter.since.map_or(i64::MIN, micros))
            .bind(before)
            .bind(at)
            .bind(id)
            .bind(i64::from(filter.page_size) + 1)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(rows::audit_event).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn index_audit(&self) -> Result<u64, StoreError> {
        match &self.by_credential {
            Some(index) => index.catch_up().await,
            None => Ok(0),
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn chain_audit(&self, limit: u32) -> Result<ChainReport, StoreError> {
        let signer = self.signer().ok_or_else(|| StoreError::Config("sealing needs the audit key".into()))?;
        // Read and compute on a reader connection, so the single writer is held only for the
        // inserts below: requests' audit writes wait for milliseconds, not for the MACs.
        let (head, from_rowid) = read_head(&self.reader).await?;
        let unsealed = || {
            sqlx::query(concat!(
                "SELECT rowid AS row_no, ",
                audit_columns!(),
                " FROM credential_audit_log a WHERE rowid > ? \
                 AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.audit_id = a.id) ORDER BY rowid LIMIT ?"
            ))
            .bind(from_rowid)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
        };
        let mut rows = unsealed().await?;
        // The journal's rows come after every row in the log (each other audit write moves the
        // journal first), so the log's rows are sealed first, and the journal is moved only
        // when they do not fill the pass: one move per sealing round, not one per pass, each
        // taking the writer from the Gets.
        if rows.len() < limit as usize {
            self.move_journal().await?;
            rows = unsealed().await?;
        }
        let Some(last) = rows.last() else {
            return Ok(ChainReport::default());
        };
        // Rows committed after this read get higher rowids (one writer, rowids in order).
        let next_rowid: i64 = last.try_get("row_no")?;
        let rows = rows.iter().map(rows::signed_audit_row).collect::<Result<Vec<_>, _>>()?;
        let (links, new_head, refused) = crate::store::link(signer, &head, &rows);
        let sealed = u32::try_from(links.len()).unwrap_or(u32::MAX);
        // All links in one statement: one round trip to SQLite's thread, not one per row. Its
        // text is made before taking the writer, which every Get waits for.
        let links = (!links.is_empty()).then(|| {
            let links = links
                .iter()
                .map(|l| serde_json::json!([l.seq, l.audit_id.to_string(), hex::encode(&l.hash)]));
            serde_json::Value::Array(links.collect()).to_string()
        });
        let mut writer = self.writer.acquire().await?;
        let mut tx = super::writer::begin_write(&mut writer).await?;
        let (current, _) = read_head(&mut *tx).await?;
        if current.seq != head.seq || current.hash != head.hash {
            // Another sealer moved the head meanwhile (only possible with two servers on one
            // file); the next pass starts from the new head.
            return Ok(ChainReport::default());
        }
        if let Some(links) = links {
            sqlx::query(
                "INSERT INTO audit_chain (seq, audit_id, hash) \
                 SELECT value ->> 0, value ->> 1, unhex(value ->> 2) FROM json_each(?)",
            )
            .bind(links)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE audit_seal SET seq = ?, hash = ?, mac = ?, next_rowid = ?, updated_at = ? WHERE id = 1",
        )
        .bind(new_head.seq)
        .bind(&new_head.hash)
        .bind(&new_head.mac)
        .bind(next_rowid)
        .bind(micros(OffsetDateTime::now_utc()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ChainReport { sealed, refused, passed_over: 0 })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn walk_audit_chain(
        &self,
        each: &mut (dyn FnMut(ChainPart) -> ControlFlow<()> + Send),
    ) -> Result<(), StoreError> {
        self.move_journal().await?;
        super::chain_walk::walk(&self.database, each).await
    }
}
