//! The store's one writer. SQLite lets one transaction write at a time; two connections write
//! here (the sqlx writer pool's one connection, for every write but Get's, and the group
//! committer's own), so every write takes a turn first, in the order asked for. Without
//! turns, a write meeting another would poll SQLite's lock, sleeping milliseconds between tries,
//! and a transaction that had read before writing would fail outright ("database is locked").

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqlitePool};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The writer pool (one connection) and the turn every writer takes.
#[derive(Clone)]
pub(super) struct Writer {
    pool: SqlitePool,
    turn: Arc<Mutex<()>>,
}

/// The writer connection, for as long as this turn lasts.
pub(super) struct Turn {
    // Dropped first: the connection goes back to its pool before the turn passes on.
    connection: PoolConnection<Sqlite>,
    _turn: OwnedMutexGuard<()>,
}

impl Writer {
    pub(super) fn new(pool: SqlitePool) -> Self {
        Self { pool, turn: Arc::new(Mutex::new(())) }
    }

    /// Waits for a turn, then takes the writer connection.
    pub(super) async fn acquire(&self) -> Result<Turn, sqlx::Error> {
        let turn = self.turn.clone().lock_owned().await;
        Ok(Turn { connection: self.pool.acquire().await?, _turn: turn })
    }

    /// Waits for a turn to write on a connection of the caller's own (the group committer's).
    pub(super) async fn turn(&self) -> OwnedMutexGuard<()> {
        self.turn.clone().lock_owned().await
    }

    pub(super) async fn close(&self) {
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
