//! WAL checkpoints off the writer's path.
//!
//! By default SQLite checkpoints inside the commit that takes the WAL past 1000 pages: that
//! commit copies the WAL into the database file and fsyncs it while the single writer, and with
//! it every Get waiting for its group, stands still. The writer connection has automatic
//! checkpoints switched off instead, and this task checkpoints on a connection of its own every
//! [`EVERY`], in PASSIVE mode, which never blocks the writer or the readers. SQLite starts the
//! WAL over from its beginning at the first write after a complete checkpoint, so the WAL stays
//! small while the task runs; when the last connection closes, SQLite checkpoints what is left.

use std::time::Duration;

use sqlx::SqlitePool;
use tokio::sync::oneshot;

/// How often the WAL is copied into the database file: under load a few thousand pages.
const EVERY: Duration = Duration::from_millis(250);

/// Stops the checkpoints, and closes their connection, when dropped.
pub(super) struct Checkpointer(#[allow(dead_code, reason = "held for its drop")] oneshot::Sender<()>);

/// Checkpoints on `pool` (one read-write connection of its own) until the returned handle is
/// dropped or the pool closed.
pub(super) fn start(pool: SqlitePool) -> Checkpointer {
    let (stop, mut stopped) = oneshot::channel();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !pool.is_closed() {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await
                && !pool.is_closed()
            {
                tracing::warn!(error = %e, "WAL checkpoint failed; the next one retries");
            }
        }
        pool.close().await;
    });
    Checkpointer(stop)
}
