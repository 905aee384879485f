//! The PostgreSQL backend's own life: its schema, the writability probe readiness runs every
//! second, the key check, closing.

use super::*;

#[async_trait]
impl Store for PostgresStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn check_writable(&self) -> Result<(), StoreError> {
        // A new transaction's transaction_read_only is on on a hot standby and under
        // default_transaction_read_only (for the server, the database or the role).
        const READ_ONLY: &str = "SELECT current_setting('transaction_read_only') = 'on'";
        // An idle pooled connection answers at once. Without one (or when it broke), the probe
        // opens a connection of its own: the pool would retry a refused connection until its
        // acquire timeout, but a refused connection is a definite answer, which readiness
        // reports at once. (A database that does not answer at all still takes the caller's
        // limit.)
        if let Some(mut pooled) = self.pool.try_acquire() {
            match sqlx::query_scalar::<_, bool>(READ_ONLY).fetch_one(&mut *pooled).await {
                Ok(read_only) => return writable(read_only),
                // Broken (the server restarted or went away): not returned to the pool.
                Err(_) => pooled.close_on_drop(),
            }
        }
        match self.pool.connect_options().connect().await {
            Ok(mut own) => {
                let read_only = sqlx::query_scalar::<_, bool>(READ_ONLY).fetch_one(&mut own).await;
                let _ = own.close().await;
                writable(read_only?)
            }
            // Refused, reset, unreachable: definite.
            Err(e @ sqlx::Error::Io(_)) => Err(e.into()),
            // Anything else (the server's connections all taken, say): the pool's answer.
            Err(_) => writable(sqlx::query_scalar(READ_ONLY).fetch_one(&self.pool).await?),
        }
    }

    /// Migrates on a connection of its own, closed after, whose statements have no time limit
    /// and are not logged: a migration may take far longer than a request may (an index built
    /// over a log of ten million rows: seconds). And the migrator's lock, which keeps instances
    /// from migrating at once, is the session's: it ends with the connection, also after a
    /// failed migration (on a pooled connection it stayed held, and every retry waited on it).
    #[tracing::instrument(level = "debug", skip_all)]
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.connection_of_its_own().await?;
        let migrated = async {
            sqlx::query("SET statement_timeout = 0").execute(&mut conn).await?;
            migrator().run_direct(None, &mut conn, false).await?;
            Ok(())
        }
        .await;
        let _ = conn.close().await;
        migrated
    }

    /// Ends the group committers (each commits what was queued first), then closes the pool.
    /// Every later call answers UNAVAILABLE.
    #[tracing::instrument(level = "debug", skip_all)]
    async fn close(&self) {
        self.uses.close().await;
        self.stores.close().await;
        self.pool.close().await;
    }
}

/// `Ok` for a database that takes writes, else `ReadOnly` saying what to change.
fn writable(read_only: bool) -> Result<(), StoreError> {
    if read_only {
        return Err(StoreError::ReadOnly(
            "the PostgreSQL database accepts reads only (a hot standby, or default_transaction_read_only \
             is on for the server, the database or credvault's role): point --database-url at the \
             primary, or turn default_transaction_read_only off"
                .into(),
        ));
    }
    Ok(())
}
