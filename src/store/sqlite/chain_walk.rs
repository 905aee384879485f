//! `audit verify`'s walk of the log on SQLite: on a connection of its own, on a thread of its
//! own, handing the parts over in batches.
//!
//! Through sqlx, each row came from sqlx's worker thread over a channel of its own: two thread
//! wake-ups per row were most of the walk's time (`perf`: futex waits and wakes ~40%, the MACs
//! and hashes 3%), 80,000-130,000 rows/s. Here rusqlite steps the statements on a thread that
//! sends a few thousand parts at a time, and the checks run beside it on the caller's task: the
//! two cores each take one side.

use std::ops::ControlFlow;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _};
use tokio::sync::mpsc;

use super::BUSY_TIMEOUT;
use super::committer::{ColumnIndex, store_error};
use crate::store::{ChainPart, StoreError, rows};

/// Parts per batch handed over.
const BATCH: usize = 4_096;

/// The links, each with its row (if the row is there), in chain order.
const LINKS: &str = concat!(
    "SELECT c.seq, c.audit_id, c.hash, a.id IS NOT NULL AS found, ",
    audit_columns!(),
    " FROM audit_chain c LEFT JOIN credential_audit_log a ON a.id = c.audit_id ORDER BY c.seq"
);

/// The rows on no link, in rowid order: the order they were committed in.
const UNSEALED: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM credential_audit_log a WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.audit_id = a.id) \
     ORDER BY rowid"
);

/// Walks the log of `database` ([`ChainPart`]'s order) in one read transaction, into `each`,
/// until the end or `each` answers `Break`.
pub(super) async fn walk(
    database: &Path,
    each: &mut (dyn FnMut(ChainPart) -> ControlFlow<()> + Send),
) -> Result<(), StoreError> {
    let (parts, mut taken) = mpsc::channel::<Result<Vec<ChainPart>, StoreError>>(4);
    let database = database.to_owned();
    let reader = std::thread::Builder::new()
        .name("credvault-verify".into())
        .spawn(move || {
            if let Err(e) = read(&database, &parts) {
                // The caller may have stopped listening: then nobody needs the error.
                let _ = parts.blocking_send(Err(e));
            }
        })
        .map_err(|e| StoreError::unavailable(format!("cannot start the audit walk's thread: {e}")))?;
    let mut outcome = Ok(());
    'parts: while let Some(batch) = taken.recv().await {
        match batch {
            Ok(batch) => {
                for part in batch {
                    if each(part).is_break() {
                        break 'parts;
                    }
                }
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    // Dropping the receiver ends the reader at its next send.
    drop(taken);
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
    outcome
}

/// The reader's side: every part, in order, a batch at a time; stops early when the receiver
/// is gone.
fn read(database: &Path, parts: &mpsc::Sender<Result<Vec<ChainPart>, StoreError>>) -> Result<(), StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(database, flags).map_err(store_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(store_error)?;
    // One snapshot for the whole walk: a sealing pass committing meanwhile cannot look like
    // tampering. A reader holds up no writer (WAL); the checkpointer's restart waits.
    let tx = conn.transaction().map_err(store_error)?;
    let mut batch = Vec::with_capacity(BATCH);
    let send = |batch: &mut Vec<ChainPart>, force: bool| -> bool {
        if batch.len() < BATCH && !force {
            return true;
        }
        parts.blocking_send(Ok(std::mem::replace(batch, Vec::with_capacity(BATCH)))).is_ok()
    };

    let head = {
        let mut statement =
            tx.prepare("SELECT seq, hash, mac FROM audit_seal WHERE id = 1").map_err(store_error)?;
        let mut known = None;
        let columns = ColumnIndex::of(&mut known, &statement);
        statement.query_row([], |row| Ok(rows::chain_head(&columns.row(row)))).map_err(store_error)??
    };
    let checkpoint = {
        let mut statement = tx
            .prepare(
                "SELECT seq, hash, mac, retired_version FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
            )
            .map_err(store_error)?;
        let mut known = None;
        let columns = ColumnIndex::of(&mut known, &statement);
        statement
            .query_row([], |row| Ok(rows::checkpoint(&columns.row(row))))
            .optional()
            .map_err(store_error)?
            .transpose()?
    };
    batch.push(ChainPart::Head { head, checkpoint });
    for sealed in [true, false] {
        let mut statement = tx.prepare(if sealed { LINKS } else { UNSEALED }).map_err(store_error)?;
        let mut known = None;
        let columns = ColumnIndex::of(&mut known, &statement);
        let mut found = statement.query([]).map_err(store_error)?;
        while let Some(row) = found.next().map_err(store_error)? {
            let row = columns.row(row);
            batch.push(if sealed { rows::sealed_part(&row)? } else { rows::unsealed_part(&row)? });
            if !send(&mut batch, false) {
                return Ok(());
            }
        }
    }
    let rows: i64 = tx
        .query_row("SELECT count(*) FROM credential_audit_log", [], |row| row.get(0))
        .map_err(store_error)?;
    batch.push(ChainPart::End { rows: u64::try_from(rows).unwrap_or(0) });
    send(&mut batch, true);
    Ok(())
}
