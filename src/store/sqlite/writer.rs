//! The store's one writer. SQLite lets one transaction write at a time; three connections write
//! here (the sqlx writer pool's one connection, and the group committers' own for Get's uses and
//! for Stores), so every write takes a turn first, in the order asked for. Without
//! turns, a write meeting another would poll SQLite's lock, sleeping milliseconds between tries,
//! and a transaction that had read before writing would fail outright ("database is locked").
//!
//! The writer can also be stopped for good: by [`Writer::close`], or by [`Writer::stop`] when
//! a write could not be made durable (a failed sync of the WAL). After a failed `fdatasync`,
//! Linux may have dropped the dirty pages it could not write and report later syncs as
//! successful, so nothing written after it could be trusted to be on disk: every write from
//! then on answers UNAVAILABLE, and a restart recovers from what is on disk.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqlitePool};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::store::StoreError;

/// The writer pool (one connection) and the turn every writer takes.
#[derive(Clone)]
pub(super) struct Writer {
    pool: SqlitePool,
    turn: Arc<Mutex<()>>,
    /// Set once, when writing ends for this process: why.
    stopped: Arc<OnceLock<Stopped>>,
}

#[derive(Debug)]
enum Stopped {
    Closed,
    Failed(String),
}

/// The writer connection, for as long as this turn lasts.
pub(super) struct Turn {
    // Dropped first: the connection goes back to its pool before the turn passes on.
    connection: PoolConnection<Sqlite>,
    _turn: OwnedMutexGuard<()>,
}

/// Begins a write transaction on the writer's connection: IMMEDIATE, so that the write lock is
/// taken (waiting out another process's write, up to the busy timeout) before anything is read.
/// A deferred transaction reads first, and when another process (`credvault key ...`,
/// `credvault customer ...` on the same file) commits before it writes, SQLite refuses its
/// upgrade at once ("database is locked") instead of waiting.
pub(super) async fn begin_write(
    connection: &mut sqlx::SqliteConnection,
) -> Result<sqlx::Transaction<'_, Sqlite>, sqlx::Error> {
    sqlx::Connection::begin_with(connection, "BEGIN IMMEDIATE").await
}

impl Writer {
    pub(super) fn new(pool: SqlitePool) -> Self {
        Self { pool, turn: Arc::new(Mutex::new(())), stopped: Arc::default() }
    }

    /// Waits for a turn, then takes the writer connection.
    pub(super) async fn acquire(&self) -> Result<Turn, StoreError> {
        let turn = self.turn().await?;
        Ok(Turn { connection: self.pool.acquire().await?, _turn: turn })
    }

    /// Waits for a turn to write on a connection of the caller's own (the group committer's).
    pub(super) async fn turn(&self) -> Result<OwnedMutexGuard<()>, StoreError> {
        self.check()?;
        let began = std::time::Instant::now();
        let turn = self.turn.clone().lock_owned().await;
        crate::store::metrics::waited_for_turn(began.elapsed());
        // Stopped while this caller waited: the writes before it were the last.
        self.check()?;
        Ok(turn)
    }

    /// `Err(UNAVAILABLE)` once writing has stopped.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        match self.stopped.get() {
            None => Ok(()),
            Some(Stopped::Closed) => Err(StoreError::closed()),
            Some(Stopped::Failed(why)) => Err(StoreError::unavailable(format!(
                "writes stopped after a write could not be made durable ({why}); restart credvault \
                 to recover from what is on disk"
            ))),
        }
    }

    /// Stops every write for the rest of this process's life, because of `why`. The first
    /// reason given stays.
    pub(super) fn stop(&self, why: String) {
        if self.stopped.set(Stopped::Failed(why.clone())).is_ok() {
            tracing::error!(reason = %why, "a write could not be made durable: the store takes no more writes until restarted");
        }
    }

    /// Waits for the writes under way, then stops writing and closes the writer connection.
    pub(super) async fn close(&self) {
        let _turn = self.turn.clone().lock_owned().await;
        let _ = self.stopped.set(Stopped::Closed);
        self.pool.close().await;
    }
}

impl Deref for Turn {
    type Target = PoolConnection<Sqlite>;

    fn deref(&self) -> &Self::Target {
        &self.connection
    }
}

impl DerefMut for Turn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.connection
    }
}
