//! WAL checkpoints off the writer's path.
//!
//! By default SQLite checkpoints inside the commit that takes the WAL past 1000 pages: that
//! commit copies the WAL into the database file and fsyncs it while the single writer, and with
//! it every Get waiting for its group, stands still. The writer connection has automatic
//! checkpoints switched off instead, and this task checkpoints on a connection of its own every
//! [`EVERY`], in PASSIVE mode, which never blocks the writer or the readers. SQLite starts the
//! WAL over from its beginning at the first write after a complete checkpoint; when the last
//! connection closes, SQLite checkpoints what is left.
//!
//! Under sustained load a PASSIVE checkpoint never completes (the writer appends while it
//! copies), so the WAL never starts over and grows without bound (hundreds of MB in seconds
//! of load; docs/design/sqlite-write-path.md). Once the WAL holds [`RESTART_AT`] frames, this task
//! takes the writer connection from its pool, as any write does, and runs a RESTART checkpoint
//! on it ([`restart`]): it copies the little the PASSIVE one left and waits until no reader
//! still reads the WAL (at most [`RESTART_WAIT`]; a longer reader makes it try again at the
//! next tick), so that the next write starts it over (and cuts the file back to the writer's
//! `journal_size_limit`). On the writer, because a RESTART checkpoint holds the write
//! lock: run from this task's own connection, it deadlocked with a Store's transaction that had
//! read and then wanted to write (SQLite answers one of them "database is locked"). Holding the
//! writer, it waits its turn behind a Store or a group committer's session (at most
//! [`HOLD`](crate::store::group_commit) long) and nothing waits on it.

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqlitePool};
use tokio::sync::oneshot;

use super::writer::Writer;
use crate::store::StoreError;

/// How often the WAL is copied into the database file: under load a few thousand pages.
const EVERY: Duration = Duration::from_millis(250);

/// A checkpoint that fails fails at every tick (a read-only or full disk): logged once a minute.
static FAILED: crate::telemetry::RateLimited = crate::telemetry::RateLimited::new(Duration::from_secs(60));

/// WAL frames (64 MiB of 4 KiB pages) past which the WAL is made to start over.
pub(super) const RESTART_AT: i64 = 16_384;

/// The same bound in bytes (SQLite's default page size), the size the WAL file is cut back to.
pub(super) const RESTART_BYTES: i64 = RESTART_AT * 4096;

/// The checkpoint task: [`Checkpointer::stop`] ends it and closes its connection; dropped, it
/// ends too, without waiting.
pub(super) struct Checkpointer {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Checkpointer {
    /// Ends the task and waits until it has closed its connection.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(());
        if self.task.await.is_err() {
            tracing::error!("the checkpoint task panicked");
        }
    }
}

/// Checkpoints on `pool` (one read-write connection of its own) until the returned handle is
/// dropped or the pool closed; once the WAL holds `restart_at` frames, makes it start over on
/// a connection of `writer`.
pub(super) fn start(pool: SqlitePool, writer: Writer, restart_at: i64) -> Checkpointer {
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !pool.is_closed() {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => {}
            }
            let checkpointed = match passive(&pool).await {
                Ok(frames) if frames >= restart_at => match writer.acquire().await {
                    Ok(mut conn) => restart(&mut conn).await.map_err(StoreError::from).map(|done| {
                        if !done {
                            tracing::debug!(
                                "a reader kept the WAL from starting over; the next tick retries"
                            );
                        }
                    }),
                    // Writing stopped for good: nothing more to copy.
                    Err(_) if writer.check().is_err() => break,
                    Err(e) => Err(e),
                },
                other => other.map(drop).map_err(StoreError::from),
            };
            if let Err(e) = checkpointed
                && !pool.is_closed()
                && let Some(held_back) = FAILED.allow()
            {
                tracing::warn!(error = %e, held_back, "WAL checkpoint failed; the next one retries");
            }
        }
        pool.close().await;
    });
    Checkpointer { stop, task }
}

/// A PASSIVE checkpoint; returns the frames in the WAL.
async fn passive(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    // (busy, frames in the WAL, frames copied into the database file)
    let (_, frames, _): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(pool).await?;
    Ok(frames)
}

/// How long a RESTART checkpoint waits for readers still on the WAL: the writer, and every
/// write behind it, waits that long. A reader that takes longer (a large audit export) makes
/// it give up until the next tick, instead of holding the writer for the whole busy timeout.
const RESTART_WAIT: Duration = Duration::from_millis(100);

/// A RESTART checkpoint on the writer connection, outside any transaction: the next write
/// starts the WAL over. `Ok(false)` if a reader kept it from completing within
/// [`RESTART_WAIT`]. If the connection's own busy timeout cannot be set back, the connection
/// is closed rather than handed back with the short one.
pub(super) async fn restart(writer: &mut PoolConnection<Sqlite>) -> Result<bool, sqlx::Error> {
    // Only numbers of this module's making go into these statements (a PRAGMA takes no parameters).
    let set_wait =
        |wait: Duration| sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {}", wait.as_millis()));
    sqlx::query(set_wait(RESTART_WAIT)).execute(&mut **writer).await?;
    // (busy, frames in the WAL, frames copied into the database file)
    let restarted: Result<(i64, i64, i64), _> =
        sqlx::query_as("PRAGMA wal_checkpoint(RESTART)").fetch_one(&mut **writer).await;
    if let Err(e) = sqlx::query(set_wait(super::BUSY_TIMEOUT)).execute(&mut **writer).await {
        writer.close_on_drop();
        return Err(e);
    }
    restarted.map(|(busy, _, _)| busy == 0)
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    use super::*;
    use crate::store::sqlite::BUSY_TIMEOUT;

    /// A WAL database in `dir` with a table `t`, as the store opens it: its options and a writer
    /// pool of one connection.
    async fn wal_database(dir: &tempfile::TempDir) -> (SqliteConnectOptions, SqlitePool) {
        let options = format!("sqlite://{}", dir.path().join("wal.db").display())
            .parse::<SqliteConnectOptions>()
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("wal_autocheckpoint", "0");
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await.unwrap();
        sqlx::query("CREATE TABLE t (v BLOB)").execute(&writer).await.unwrap();
        (options, writer)
    }

    /// Inserts rows of `bytes` random bytes through `writer`, without a pause, until aborted.
    fn keep_inserting(writer: &SqlitePool, bytes: u32) -> tokio::task::JoinHandle<()> {
        let writer = writer.clone();
        tokio::spawn(async move {
            loop {
                sqlx::query("INSERT INTO t VALUES (randomblob(?))")
                    .bind(bytes)
                    .execute(&writer)
                    .await
                    .unwrap();
            }
        })
    }

    #[tokio::test]
    async fn a_restart_on_the_writer_starts_the_wal_over_under_constant_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (options, writer) = wal_database(&dir).await;
        let checkpointer = SqlitePool::connect_with(options).await.unwrap();
        for _ in 0..1000 {
            sqlx::query("INSERT INTO t VALUES (randomblob(3000))").execute(&writer).await.unwrap();
        }
        // A writer that never pauses: a PASSIVE checkpoint alone never catches up with it.
        let busy = keep_inserting(&writer, 100);
        let before = passive(&checkpointer).await.unwrap();
        assert!(before >= 1000, "{before} frames");
        assert!(restart(&mut writer.acquire().await.unwrap()).await.unwrap(), "no reader in the way");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let after = passive(&checkpointer).await.unwrap();
        busy.abort();
        assert!(after < before / 2, "{after} frames in the WAL after a restart, {before} before");
    }

    #[tokio::test]
    async fn the_checkpointer_starts_the_wal_over_under_plain_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (options, writer) = wal_database(&dir).await;
        let probe = SqlitePool::connect_with(options.clone()).await.unwrap();
        // Writes that never pause, each on the writer pool as a Store's would be.
        let busy = keep_inserting(&writer, 3000);
        let _checkpoints =
            start(SqlitePool::connect_with(options).await.unwrap(), Writer::new(writer.clone()), 500);
        // Without a restart the WAL only grows (one frame per insert, and more); with one it
        // keeps starting over, so it stays near the bound however long the writes go on. The
        // test waits for work, not time: until the WAL has had several times the bound written
        // to it (a slow disk only makes that take longer), and gives up only after a minute.
        let count =
            async || -> i64 { sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(&probe).await.unwrap() };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut frames = Vec::new();
        let started_over = |frames: &[i64]| frames.windows(2).any(|w| w[1] < w[0]);
        let mut inserted = 0;
        while !(inserted > 2000 && started_over(&frames)) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(EVERY).await;
            let in_wal = passive(&probe).await.unwrap();
            // (-1 when the checkpoint could not look at the WAL: nothing to learn from.)
            if in_wal >= 0 {
                frames.push(in_wal);
            }
            inserted = count().await;
        }
        busy.abort();
        assert!(inserted > 2000, "the writes went on ({inserted} rows in a minute)");
        assert!(
            started_over(&frames),
            "the WAL started over at least once: frames seen {frames:?} after {inserted} inserts"
        );
    }

    #[tokio::test]
    async fn a_reader_on_the_wal_makes_a_restart_give_up_soon_and_the_writer_keeps_its_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let (options, writer) = wal_database(&dir).await;
        sqlx::query("INSERT INTO t VALUES (randomblob(3000))").execute(&writer).await.unwrap();
        // A reader in the middle of a read transaction holds its snapshot of the WAL.
        let mut reader = sqlx::ConnectOptions::connect(&options).await.unwrap();
        sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(&mut reader).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (randomblob(3000))").execute(&writer).await.unwrap();

        let mut conn = writer.acquire().await.unwrap();
        let started = std::time::Instant::now();
        let done = restart(&mut conn).await.unwrap();
        let waited = started.elapsed();
        assert!(!done, "the reader's snapshot is still in the WAL");
        assert!(waited < BUSY_TIMEOUT, "gave up after {waited:?}, not the writer's busy timeout");
        let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(&mut *conn).await.unwrap();
        assert_eq!(
            timeout,
            i64::try_from(BUSY_TIMEOUT.as_millis()).unwrap(),
            "the writer's own timeout is back"
        );
        drop(conn);

        sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
        assert!(
            restart(&mut writer.acquire().await.unwrap()).await.unwrap(),
            "with the reader gone it completes"
        );
    }
}
