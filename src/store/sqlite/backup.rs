//! Copies of a SQLite vault for operators: `credvault backup` and `credvault restore`.
//!
//! A backup is `VACUUM INTO` a new file: one read transaction, so the copy is consistent even
//! while a server writes (WAL lets it read beside the writer), holds what is in the WAL too, and
//! is a plain database file that needs nothing beside it. A restore copies a checked backup
//! next to the database and renames it into place, removing the old database's WAL and
//! shared-memory files first: SQLite would otherwise replay the old WAL onto the new file.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

use crate::store::StoreError;

/// The database file a `sqlite:` URL names.
pub fn database_file(url: &str) -> Result<PathBuf, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Config(format!("invalid SQLite URL: {e}")))?;
    Ok(options.get_filename().to_owned())
}

/// Writes a consistent copy of the database `database` to `to`, which must not exist; the copy
/// is readable by its owner only, like the database.
pub async fn backup(database: &Path, to: &Path) -> Result<(), StoreError> {
    if !database.is_file() {
        return Err(StoreError::Config(format!("there is no database file {}", database.display())));
    }
    // VACUUM INTO fills an empty file: creating it first gives it the database's privacy.
    crate::private_files::create_new_private_file(to).map_err(|e| {
        StoreError::Config(format!(
            "cannot create the backup file {}: {e} (it must not exist yet)",
            to.display()
        ))
    })?;
    let copied = async {
        let mut source = SqliteConnectOptions::new()
            .filename(database)
            .read_only(true)
            .busy_timeout(super::BUSY_TIMEOUT)
            .connect()
            .await?;
        let target = to.to_str().ok_or_else(|| StoreError::Config("the backup path is not UTF-8".into()))?;
        sqlx::query("VACUUM INTO ?").bind(target).execute(&mut source).await?;
        source.close().await?;
        Ok::<_, StoreError>(())
    };
    if let Err(e) = copied.await {
        let _ = std::fs::remove_file(to);
        return Err(e);
    }
    Ok(())
}

/// What a backup file holds that a restore checks: whether SQLite finds it intact, and the
/// check value of each key version it was written with. Reads the file without changing it or
/// creating anything beside it.
pub async fn inspect(file: &Path) -> Result<Inspected, StoreError> {
    let mut connection =
        SqliteConnectOptions::new().filename(file).read_only(true).immutable(true).connect().await?;
    let check: String = sqlx::query_scalar("PRAGMA quick_check").fetch_one(&mut connection).await?;
    let keys: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, check_value FROM encryption_keys ORDER BY version")
            .fetch_all(&mut connection)
            .await
            .map_err(|_| StoreError::Config(format!("{} is not a credvault database", file.display())))?;
    connection.close().await?;
    let keys = keys
        .into_iter()
        .map(|(version, value)| {
            let version = u32::try_from(version).map_err(|_| StoreError::Config("bad key version".into()))?;
            Ok((version, value))
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Inspected { intact: check == "ok", keys })
}

/// See [`inspect`].
#[derive(Debug)]
pub struct Inspected {
    pub intact: bool,
    /// (key version, check value), oldest version first.
    pub keys: Vec<(u32, Vec<u8>)>,
}

/// Puts the backup `from` in place of the database `database` (no server may have it open).
/// Without `replace`, refuses a database that exists.
pub fn restore(from: &Path, database: &Path, replace: bool) -> Result<(), StoreError> {
    let config = |what: String| StoreError::Config(what);
    if database.exists() && !replace {
        return Err(config(format!(
            "{} exists; stop every server using it and pass --replace to overwrite it",
            database.display()
        )));
    }
    let dir = database.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    crate::private_files::create_private_dir(dir)
        .map_err(|e| config(format!("cannot create {}: {e}", dir.display())))?;
    let staged = dir.join(format!(".credvault-restore-{}", uuid::Uuid::new_v4().simple()));
    let copy = || -> std::io::Result<()> {
        let mut source = std::fs::File::open(from)?;
        let mut target = crate::private_files::create_new_private_file(&staged)?;
        std::io::copy(&mut source, &mut target)?;
        target.sync_all()
    };
    if let Err(e) = copy() {
        let _ = std::fs::remove_file(&staged);
        return Err(config(format!("cannot copy {} next to {}: {e}", from.display(), database.display())));
    }
    // The old database's WAL, and its audit index by credential (derived from its log: the
    // server builds the restored log's anew).
    for suffix in ["-wal", "-shm", "-by-credential", "-by-credential-wal", "-by-credential-shm"] {
        let mut side = database.as_os_str().to_owned();
        side.push(suffix);
        match std::fs::remove_file(PathBuf::from(side)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let _ = std::fs::remove_file(&staged);
                return Err(config(format!("cannot remove the old database's {suffix} file: {e}")));
            }
        }
    }
    std::fs::rename(&staged, database).map_err(|e| {
        let _ = std::fs::remove_file(&staged);
        config(format!("cannot move the restored copy to {}: {e}", database.display()))
    })?;
    // The rename itself is durable once the directory is synced.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}
