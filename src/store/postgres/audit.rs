//! The PostgreSQL backend's the audit log: appending, listing, chaining and reading the chain.

use std::ops::ControlFlow;

use futures_util::{Stream, TryStreamExt};
use sqlx::{Connection as _, PgConnection};

use super::*;
use crate::store::{AuditStore, ChainPart};

#[async_trait]
impl AuditStore for PostgresStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn append_audit(&self, audit: AuditEntry, now: OffsetDateTime) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_audit(&mut tx, self.signer(), &audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, credential_id, customer_id, action, action_details, host(ip_address) AS ip_address, \
             actor, created_at FROM credential_audit_log \
             WHERE ($1::uuid IS NULL OR customer_id = $1) AND ($2::uuid IS NULL OR credential_id = $2) \
             AND ($3::text IS NULL OR action = $3) AND ($4::timestamptz IS NULL OR created_at >= $4) \
             AND ($5::timestamptz IS NULL OR created_at < $5) \
             AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7)) \
             ORDER BY created_at DESC, id DESC LIMIT $8",
        )
        .bind(filter.customer_id.map(|c| *c.as_uuid()))
        .bind(filter.credential_id.map(|c| *c.as_uuid()))
        .bind(filter.action.map(AuditAction::as_str))
        .bind(filter.since.map(to_stored_precision))
        .bind(filter.until.map(to_stored_precision))
        .bind(filter.after.map(|c| from_micros(c.at_micros)).transpose()?)
        .bind(filter.after.map(|c| c.id))
        .bind(i64::from(filter.page_size) + 1)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::audit_event).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn chain_audit(&self, limit: u32) -> Result<ChainReport, StoreError> {
        let signer = self.signer().ok_or_else(|| StoreError::Config("sealing needs the audit key".into()))?;
        let mut tx = self.pool.begin().await?;
        // Taken before anything else, so it is at most the xmin of the snapshot the rows are read
        // in: every row that read cannot see belongs to a transaction at or above it.
        let xmin: i64 = sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            .fetch_one(&mut *tx)
            .await?;
        // The head's row lock serializes sealers across instances; requests never take it.
        let head =
            sqlx::query("SELECT seq, hash, mac, next_tx, next_id FROM audit_seal WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
        let from: (i64, Option<Uuid>) = (head.try_get("next_tx")?, head.try_get("next_id")?);
        let head = rows::chain_head(&head)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            ", tx FROM credential_audit_log a WHERE tx >= $1 AND ($2::uuid IS NULL OR (tx, id) > ($1, $2)) \
             AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.audit_id = a.id) ORDER BY tx, id LIMIT $3"
        ))
        .bind(from.0)
        .bind(from.1)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        // A full batch resumes right after its last row; otherwise every row below xmin is done.
        let next = match rows.last() {
            Some(last) if rows.len() >= usize::try_from(limit).unwrap_or(usize::MAX) => {
                (last.try_get("tx")?, Some(last.try_get::<Uuid, _>("id")?))
            }
            _ => (xmin, None),
        };
        let signed = rows.iter().map(rows::signed_audit_row).collect::<Result<Vec<_>, _>>()?;
        let (links, head, refused) = crate::store::link(signer, &head, &signed);
        let passed_over = refused.len();
        // The writing transaction of each refused row (usually none), in the order read.
        let refused = rows
            .iter()
            .zip(&signed)
            .filter(|(_, signed)| refused.contains(&signed.event.id))
            .map(|(row, signed)| Ok((signed.event.id, row.try_get::<i64, _>("tx")?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let refused = self.refused.newly(refused, next.0);
        let passed_over = u32::try_from(passed_over - refused.len()).unwrap_or(u32::MAX);
        if !links.is_empty() {
            sqlx::query(
                "INSERT INTO audit_chain (seq, audit_id, hash) \
                 SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::bytea[])",
            )
            .bind(links.iter().map(|l| l.seq).collect::<Vec<_>>())
            .bind(links.iter().map(|l| l.audit_id).collect::<Vec<_>>())
            .bind(links.iter().map(|l| l.hash.as_slice()).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE audit_seal SET seq = $1, hash = $2, mac = $3, next_tx = $4, next_id = $5, updated_at = now() \
             WHERE id = 1",
        )
        .bind(head.seq)
        .bind(&head.hash)
        .bind(&head.mac)
        .bind(next.0)
        .bind(next.1)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ChainReport { sealed: u32::try_from(links.len()).unwrap_or(u32::MAX), refused, passed_over })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn walk_audit_chain(
        &self,
        each: &mut (dyn FnMut(ChainPart) -> ControlFlow<()> + Send),
    ) -> Result<(), StoreError> {
        // Each of the walk's statements takes as long as the log is (tens of seconds at ten
        // million rows): a slow-statement warning would say nothing.
        let mut conn = self.connection_of_its_own().await?;
        // One snapshot, so a sealing pass committing meanwhile cannot look like tampering.
        let mut tx = conn.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        // The walk is one statement per part of the log, as long as the log is (minutes at ten
        // million rows): the pool's statement timeout, meant for requests, does not apply.
        sqlx::query("SET LOCAL statement_timeout = 0").execute(&mut *tx).await?;
        // Left to itself, the planner hashes the whole log to join it to the chain, then sorts the
        // joined rows by `seq` on disk before the first one is out (at 10 million rows: 2.7 GB of
        // temporary files, ~25 s), and hashes the chain again for the rows on no link. Without
        // hash joins, the links come in `seq` order from their primary key, each row looked up by
        // its id as it goes (nothing sorted; rows flow at once), and the rows on no link from a
        // merge of the two id indexes: at 10.6 million rows, 208,000 -> 357,000-382,000 rows/s and
        // no temporary files.
        sqlx::query("SET LOCAL enable_hashjoin = off").execute(&mut *tx).await?;
        let head =
            sqlx::query("SELECT seq, hash, mac FROM audit_seal WHERE id = 1").fetch_one(&mut *tx).await?;
        let head = rows::chain_head(&head)?;
        let checkpoint = sqlx::query(
            "SELECT seq, hash, mac, retired_version::bigint AS retired_version FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(rows::checkpoint)
        .transpose()?;
        let links = concat!(
            "SELECT c.seq, c.audit_id, c.hash, a.id IS NOT NULL AS found, ",
            audit_columns!(),
            " FROM audit_chain c LEFT JOIN credential_audit_log a ON a.id = c.audit_id ORDER BY c.seq"
        );
        let unsealed = concat!(
            "SELECT ",
            audit_columns!(),
            " FROM credential_audit_log a WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.audit_id = a.id) \
             ORDER BY created_at, id"
        );
        walk_chain(&mut tx, ChainPart::Head { head, checkpoint }, links, unsealed, each).await?;
        tx.commit().await?;
        conn.close().await?;
        Ok(())
    }
}

/// The rest of `audit verify`'s walk once the head is read ([`ChainPart`]'s order): hands `head`
/// to `each`, then every link with its row (`links`), every row on no link (`unsealed`), and the
/// log's row count, all in the read transaction the caller opened on `conn` (and commits); stops
/// where `each` answers `Break`. (SQLite walks on a connection and thread of its own:
/// `sqlite/chain_walk.rs`.)
async fn walk_chain(
    conn: &mut PgConnection,
    head: ChainPart,
    links: &'static str,
    unsealed: &'static str,
    each: &mut (dyn FnMut(ChainPart) -> ControlFlow<()> + Send),
) -> Result<(), StoreError> {
    if each(head).is_break()
        || walk_parts(sqlx::query(links).fetch(&mut *conn), rows::sealed_part, each).await?.is_break()
        || walk_parts(sqlx::query(unsealed).fetch(&mut *conn), rows::unsealed_part, each).await?.is_break()
    {
        return Ok(());
    }
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM credential_audit_log").fetch_one(&mut *conn).await?;
    let _ = each(ChainPart::End { rows: u64::try_from(rows).unwrap_or(0) });
    Ok(())
}

/// Hands each of `rows`, as `part` reads it, to `each` until the rows end or `each` answers
/// `Break` (then answered).
async fn walk_parts(
    rows: impl Stream<Item = Result<PgRow, sqlx::Error>>,
    part: fn(&PgRow) -> Result<ChainPart, StoreError>,
    each: &mut (dyn FnMut(ChainPart) -> ControlFlow<()> + Send),
) -> Result<ControlFlow<()>, StoreError> {
    let mut rows = std::pin::pin!(rows);
    while let Some(row) = rows.try_next().await? {
        if each(part(&row)?).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}
