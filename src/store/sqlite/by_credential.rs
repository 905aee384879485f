//! One credential's audit events without walking the whole log: the log indexed by credential,
//! in a database file of its own beside the vault's (`<database>-by-credential`).
//!
//! An index by credential inside the vault's file puts each new row beside its credential's
//! earlier ones: a page of the index per credential per move of Get's use journal, written by
//! the one writer every Get waits for. Measured, it cost a quarter of the Gets a server serves
//! from its cache (docs/benchmarks.md, "the journal and the log indexed by credential"), so the
//! log has only its time index, and a credential used rarely was found by walking all of it
//! (1.2 s at ten million rows, 36 s with the file not in the OS cache). This file has a writer of
//! its own: a task of the server brings it up to date every second ([`ByCredential::catch_up`]),
//! many log rows per transaction, and neither Gets nor the moves ever wait for it.
//!
//! Its connections attach the vault's file (as `log`), so one statement takes a batch of log
//! rows into the index, and one statement lists. Its high-water mark (the last log row taken, by
//! `seq` and id) lives in the index's file, so the entries and the mark change together. A
//! listing reads the entries up to the mark and the log's rows past it. An empty index (a first
//! start on an existing log) is filled in one sorted pass, as SQLite builds an index.
//!
//! The file is derived from the log: missing, it is created; when its mark does not match the log
//! (a restored backup, another vault's file), it starts over; while it lags far behind
//! (rebuilding), listings walk the log as before. Nothing in it is secret or signed: the rows a
//! listing answers with are read from the log. Its disk cost: ~110 bytes per audit row.

use std::path::{Path, PathBuf};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use sqlx::{Executor, Sqlite, Transaction};

use super::{BUSY_TIMEOUT, in_process_pool, micros};
use crate::domain::{AuditAction, AuditEvent, AuditFilter};
use crate::store::StoreError;
use crate::store::rows;

/// Log rows taken per transaction once the index has caught up (an empty index takes them all
/// at once). Small: what a pass holds in memory (its sort, the pages it dirties) is the
/// server's.
const BATCH: i64 = 5_000;

/// Log rows taken per [`ByCredential::catch_up`] at most, an empty index's first pass aside: a
/// pass stays short (a server that stops waits for the pass under way); the next takes more.
const PER_PASS: i64 = 200_000;

/// A listing reads the log's rows past the mark one by one: beyond this many (an index being
/// built) it walks the log's time index instead.
const MAX_LAG: i64 = 20_000;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS main.mark (\
         id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, audit_id TEXT NOT NULL) STRICT; \
     CREATE TABLE IF NOT EXISTS main.events (\
         credential_id TEXT NOT NULL, created_at INTEGER NOT NULL, id TEXT NOT NULL, \
         action TEXT NOT NULL, seq INTEGER NOT NULL, \
         PRIMARY KEY (credential_id, created_at, id)) STRICT, WITHOUT ROWID";

/// Takes the log's rows `?1 < seq <= ?2` into the index, in the index's order.
const TAKE: &str = "INSERT OR IGNORE INTO main.events (credential_id, created_at, id, action, seq) \
     SELECT credential_id, created_at, id, action, seq FROM log.credential_audit_log \
     WHERE seq > ?1 AND seq <= ?2 AND credential_id IS NOT NULL ORDER BY credential_id, created_at, id";

/// One page of a credential's events (the mark ?1, then `LIST_AUDIT`'s parameters as ?2-?9): the
/// index's newest matches up to the mark, each row read from the log by seq, with the log's
/// matching rows past the mark (later in commit order; a use moves in from the journal after
/// rows written since, so their times interleave with the index's), found by seq (`NOT INDEXED`:
/// else SQLite walks the log's time index for their order, all of it).
const LIST: &str = "SELECT id, credential_id, customer_id, action, action_details, ip_address, actor, created_at \
     FROM (SELECT a.* FROM main.events e JOIN log.credential_audit_log a ON a.seq = e.seq \
         WHERE e.credential_id = ?3 AND (?4 IS NULL OR e.action = ?4) \
         AND e.created_at >= ?5 AND e.created_at < ?6 AND (e.created_at, e.id) < (?7, ?8) \
         AND (?2 IS NULL OR a.customer_id = ?2) \
         ORDER BY e.created_at DESC, e.id DESC LIMIT ?9) \
     UNION ALL \
     SELECT id, credential_id, customer_id, action, action_details, ip_address, actor, created_at \
     FROM log.credential_audit_log NOT INDEXED WHERE seq > ?1 AND credential_id = ?3 \
         AND (?2 IS NULL OR customer_id = ?2) AND (?4 IS NULL OR action = ?4) \
         AND created_at >= ?5 AND created_at < ?6 AND (created_at, id) < (?7, ?8) \
     ORDER BY created_at DESC, id DESC LIMIT ?9";

/// The index file, open, the vault's file attached to each connection as `log`.
pub(super) struct ByCredential {
    pool: SqlitePool,
}

impl ByCredential {
    /// The index file of the vault's `database` file.
    pub(super) fn path_of(database: &Path) -> PathBuf {
        let mut name = database.as_os_str().to_owned();
        name.push("-by-credential");
        PathBuf::from(name)
    }

    /// Opens (creating if missing) the index of the vault's `database` file.
    pub(super) async fn open(database: &Path) -> Result<Self, StoreError> {
        let path = Self::path_of(database);
        crate::private_files::create_private_file_if_missing(&path).map_err(|e| {
            StoreError::Config(format!("cannot create the audit index file {}: {e}", path.display()))
        })?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .journal_mode(SqliteJournalMode::Wal)
            // Derived data: a power loss may lose its last batches, which the next pass redoes.
            .synchronous(SqliteSynchronous::Normal)
            // A small page cache for each file on each connection: the index's leaves are
            // written all over it, rarely twice in a pass, and the OS caches the file anyway; a
            // 64 MB cache here took the server's peak RSS from 37 to 167 MB.
            .pragma("cache_size", "-512")
            // Each pass rewrites the leaves of the credentials in use: copied into the file
            // (and synced) every 40 MiB of WAL instead of SQLite's 4, most are copied once for
            // many passes, and the vault's own syncs meet fewer of this file's.
            .pragma("wal_autocheckpoint", "10000")
            // The first pass over an existing log writes the whole index through the WAL: cut
            // it back once checkpointed.
            .pragma("journal_size_limit", (64 * 1024 * 1024).to_string())
            .busy_timeout(BUSY_TIMEOUT);
        let log = database.to_string_lossy().into_owned();
        // One connection catches up, one lists (WAL lets it read beside the writer): a listing
        // never waits for a pass, not even the first one over a whole log.
        let pool = in_process_pool(2)
            .after_connect(move |conn, _| {
                let log = log.clone();
                Box::pin(async move {
                    // Only read through this connection: the vault's writes take the vault's turns.
                    conn.execute(sqlx::query("ATTACH DATABASE ?1 AS log").bind(log)).await?;
                    conn.execute("PRAGMA log.cache_size = -512").await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes the file: its WAL goes into it as the last connection closes.
    pub(super) async fn close(&self) {
        self.pool.close().await;
    }

    /// Takes the log's rows past the mark into the index, [`BATCH`] per transaction, until none
    /// is left or [`PER_PASS`] are taken (an empty index: all of them, in one transaction);
    /// starts over if the mark is not a row of this log. Answers the rows taken.
    pub(super) async fn catch_up(&self) -> Result<u64, StoreError> {
        let mut taken: i64 = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let mut after = mark(&mut tx).await?;
            if !marks_this_log(&mut tx, after.as_ref()).await? {
                tracing::warn!(
                    "the audit index by credential does not match the log (a restored backup?); rebuilding it"
                );
                sqlx::raw_sql("DELETE FROM main.events; DELETE FROM main.mark").execute(&mut *tx).await?;
                after = None;
            }
            let from = after.as_ref().map_or(0, |(seq, _)| *seq);
            let newest: Option<(i64, String)> = sqlx::query_as(
                "SELECT seq, id FROM log.credential_audit_log WHERE seq > ?1 AND seq <= ?2 ORDER BY seq DESC LIMIT 1",
            )
            .bind(from)
            .bind(if after.is_none() { i64::MAX } else { from.saturating_add(BATCH) })
            .fetch_optional(&mut *tx)
            .await?;
            let Some((to, audit_id)) = newest else {
                tx.commit().await?;
                return Ok(u64::try_from(taken).unwrap_or(0));
            };
            let rows: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM log.credential_audit_log WHERE seq > ?1 AND seq <= ?2",
            )
            .bind(from)
            .bind(to)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(TAKE).bind(from).bind(to).execute(&mut *tx).await?;
            sqlx::query("INSERT OR REPLACE INTO main.mark (id, seq, audit_id) VALUES (1, ?1, ?2)")
                .bind(to)
                .bind(audit_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            taken += rows;
            if to - from < BATCH || taken >= PER_PASS {
                return Ok(u64::try_from(taken).unwrap_or(0));
            }
        }
    }

    /// `filter`'s page (up to `page_size + 1` events, newest first) for its credential, or
    /// `None` when the index cannot answer it (no credential in the filter, an index being built,
    /// or one that is not this log's).
    pub(super) async fn list(&self, filter: &AuditFilter) -> Result<Option<Vec<AuditEvent>>, StoreError> {
        let Some(credential) = filter.credential_id else { return Ok(None) };
        let (at, id) = filter.after.map_or((i64::MAX, String::new()), |c| (c.at_micros, c.id.to_string()));
        // One read transaction: the mark and the entries up to it from one snapshot.
        let mut tx = self.pool.begin().await?;
        let marked = mark(&mut tx).await?;
        if !marks_this_log(&mut tx, marked.as_ref()).await? {
            return Ok(None);
        }
        let after = marked.map_or(0, |(seq, _)| seq);
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT max(seq) FROM log.credential_audit_log").fetch_one(&mut *tx).await?;
        if newest.unwrap_or(0) - after > MAX_LAG {
            return Ok(None);
        }
        let rows = sqlx::query(LIST)
            .bind(after)
            .bind(filter.customer_id.map(|c| c.to_string()))
            .bind(credential.to_string())
            .bind(filter.action.map(AuditAction::as_str))
            .bind(filter.since.map_or(i64::MIN, micros))
            .bind(filter.until.map_or(i64::MAX, micros))
            .bind(at)
            .bind(id)
            .bind(i64::from(filter.page_size) + 1)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(rows::audit_event).collect::<Result<_, _>>().map(Some)
    }
}

/// The mark: the last log row the index took (`seq`, audit id), if any.
async fn mark(tx: &mut Transaction<'_, Sqlite>) -> Result<Option<(i64, String)>, StoreError> {
    Ok(sqlx::query_as("SELECT seq, audit_id FROM main.mark WHERE id = 1").fetch_optional(&mut **tx).await?)
}

/// Whether `mark` is a row of this log (no mark is: nothing taken yet).
async fn marks_this_log(
    tx: &mut Transaction<'_, Sqlite>,
    mark: Option<&(i64, String)>,
) -> Result<bool, StoreError> {
    let Some((seq, audit_id)) = mark else { return Ok(true) };
    let at_mark: Option<String> =
        sqlx::query_scalar("SELECT id FROM log.credential_audit_log WHERE seq = ?1")
            .bind(seq)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(at_mark.as_ref() == Some(audit_id))
}
