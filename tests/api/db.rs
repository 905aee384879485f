//! Direct SQL against a test's database, behind the server's back: for checks the API cannot
//! make (audit rows, stored bytes) and for tampering. One method per question, per backend.

use std::borrow::Cow;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

pub enum TestDb {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl TestDb {
    pub async fn connect(url: &str) -> TestDb {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let options = SqliteConnectOptions::new().filename(path).busy_timeout(Duration::from_secs(10));
            TestDb::Sqlite(SqlitePool::connect_with(options).await.unwrap())
        } else {
            TestDb::Postgres(PgPool::connect(url).await.unwrap())
        }
    }

    /// Like `connect`, creating a SQLite file that does not exist yet.
    pub async fn connect_creating(url: &str) -> TestDb {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let options = SqliteConnectOptions::new().filename(path).create_if_missing(true);
            TestDb::Sqlite(SqlitePool::connect_with(options).await.unwrap())
        } else {
            Self::connect(url).await
        }
    }

    /// Applies the schema's first three migrations only, as credvault recorded them, so that
    /// `Store::migrate` continues from there: a database written by an older credvault.
    pub async fn migrate_to_version_3(&self) {
        let migrator = |files: [&'static str; 3]| {
            let migrations = ["initial", "tokens", "audit seal"]
                .into_iter()
                .zip(files)
                .zip(1..)
                .map(|((description, sql), version)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        sqlx::SqlSafeStr::into_sql_str(sql),
                        false,
                    )
                })
                .collect();
            Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
        };
        match self {
            TestDb::Sqlite(pool) => migrator([
                include_str!("../../migrations/sqlite/0001_initial.sql"),
                include_str!("../../migrations/sqlite/0002_tokens.sql"),
                include_str!("../../migrations/sqlite/0003_audit_seal.sql"),
            ])
            .run(pool)
            .await
            .unwrap(),
            TestDb::Postgres(pool) => migrator([
                include_str!("../../migrations/postgres/0001_initial.sql"),
                include_str!("../../migrations/postgres/0002_tokens.sql"),
                include_str!("../../migrations/postgres/0003_audit_seal.sql"),
            ])
            .run(pool)
            .await
            .unwrap(),
        }
    }

    /// `SELECT count(*) ...` without parameters.
    pub async fn count(&self, sql: &'static str) -> i64 {
        match self {
            TestDb::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            TestDb::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }

    /// `SELECT count(*) ...` built by the test (from values it made itself).
    pub async fn count_owned(&self, sql: String) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql);
        match self {
            TestDb::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            TestDb::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }

    /// Every audit row, on SQLite those still in the use journal too.
    pub async fn audit_rows(&self) -> i64 {
        match self {
            TestDb::Sqlite(_) => {
                self.count(
                    "SELECT (SELECT count(*) FROM credential_audit_log) + (SELECT count(*) FROM credential_use_journal)",
                )
                .await
            }
            TestDb::Postgres(_) => self.count("SELECT count(*) FROM credential_audit_log").await,
        }
    }

    /// The audit actions recorded for a credential, oldest first.
    pub async fn audit_actions(&self, credential_id: &str) -> Vec<String> {
        match self {
            // Gets' rows wait in the use journal until the server moves them into the log.
            TestDb::Sqlite(pool) => sqlx::query_scalar(
                "SELECT action FROM (SELECT action, created_at, 0 AS moved, rowid AS n FROM credential_audit_log \
                 WHERE credential_id = ?1 UNION ALL SELECT action, created_at, 1, seq FROM credential_use_journal \
                 WHERE credential_id = ?1) ORDER BY created_at, moved, n",
            )
            .bind(credential_id)
            .fetch_all(pool)
            .await
            .unwrap(),
            TestDb::Postgres(pool) => sqlx::query_scalar(
                "SELECT action FROM credential_audit_log WHERE credential_id = $1::uuid ORDER BY created_at",
            )
            .bind(credential_id)
            .fetch_all(pool)
            .await
            .unwrap(),
        }
    }

    /// The details of the `denied` audit rows naming the token `actor`, oldest first.
    pub async fn denials(&self, actor: &str) -> Vec<String> {
        match self {
            TestDb::Sqlite(pool) => sqlx::query_scalar(
                "SELECT action_details FROM credential_audit_log WHERE action = 'denied' AND actor = ? \
                 ORDER BY created_at, rowid",
            )
            .bind(actor)
            .fetch_all(pool)
            .await
            .unwrap(),
            TestDb::Postgres(pool) => sqlx::query_scalar(
                "SELECT action_details FROM credential_audit_log WHERE action = 'denied' AND actor = $1 \
                 ORDER BY created_at",
            )
            .bind(actor)
            .fetch_all(pool)
            .await
            .unwrap(),
        }
    }

    /// The first column of every row `sql` returns, as text.
    pub async fn texts(&self, sql: String) -> Vec<String> {
        let sql = sqlx::AssertSqlSafe(sql);
        match self {
            TestDb::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
            TestDb::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        }
    }

    /// Runs one statement behind the server's back (tampering); returns the rows it touched.
    pub async fn execute(&self, sql: &str) -> u64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            TestDb::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.unwrap().rows_affected(),
            TestDb::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.unwrap().rows_affected(),
        }
    }

    /// The numbers of a credential's stored versions, in order.
    pub async fn version_numbers(&self, credential_id: &str) -> Vec<u32> {
        let numbers: Vec<i64> = match self {
            TestDb::Sqlite(pool) => sqlx::query_scalar(
                "SELECT version FROM credential_versions WHERE credential_id = ? ORDER BY version",
            )
            .bind(credential_id)
            .fetch_all(pool)
            .await
            .unwrap(),
            TestDb::Postgres(pool) => sqlx::query_scalar(
                "SELECT version FROM credential_versions WHERE credential_id = $1::uuid ORDER BY version",
            )
            .bind(credential_id)
            .fetch_all(pool)
            .await
            .unwrap(),
        };
        numbers.into_iter().map(|n| u32::try_from(n).unwrap()).collect()
    }

    /// How many rows (active or not) a credential id has.
    pub async fn credential_rows(&self, credential_id: &str) -> i64 {
        match self {
            TestDb::Sqlite(pool) => sqlx::query_scalar("SELECT count(*) FROM cloud_credentials WHERE id = ?")
                .bind(credential_id)
                .fetch_one(pool)
                .await
                .unwrap(),
            TestDb::Postgres(pool) => {
                sqlx::query_scalar("SELECT count(*) FROM cloud_credentials WHERE id = $1::uuid")
                    .bind(credential_id)
                    .fetch_one(pool)
                    .await
                    .unwrap()
            }
        }
    }

    pub async fn ciphertext(&self, credential_id: &str) -> Vec<u8> {
        match self {
            TestDb::Sqlite(pool) => sqlx::query_scalar(
                "SELECT v.encrypted_credentials FROM credential_versions v JOIN cloud_credentials c \
                     ON c.id = v.credential_id AND c.current_version = v.version WHERE c.id = ?",
            )
            .bind(credential_id)
            .fetch_one(pool)
            .await
            .unwrap(),
            TestDb::Postgres(pool) => sqlx::query_scalar(
                "SELECT v.encrypted_credentials FROM credential_versions v JOIN cloud_credentials c \
                     ON c.id = v.credential_id AND c.current_version = v.version WHERE c.id = $1::uuid",
            )
            .bind(credential_id)
            .fetch_one(pool)
            .await
            .unwrap(),
        }
    }

    pub async fn set_ciphertext(&self, credential_id: &str, blob: &[u8]) {
        match self {
            TestDb::Sqlite(pool) => {
                sqlx::query(
                    "UPDATE credential_versions SET encrypted_credentials = ?1 WHERE credential_id = ?2 \
                     AND version = (SELECT current_version FROM cloud_credentials WHERE id = ?2)",
                )
                .bind(blob)
                .bind(credential_id)
                .execute(pool)
                .await
                .unwrap();
            }
            TestDb::Postgres(pool) => {
                sqlx::query(
                    "UPDATE credential_versions SET encrypted_credentials = $1 WHERE credential_id = $2::uuid \
                     AND version = (SELECT current_version FROM cloud_credentials WHERE id = $2::uuid)",
                )
                    .bind(blob)
                    .bind(credential_id)
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }

    /// Whether any stored ciphertext or audit detail contains `needle` (the database's own view,
    /// for when the test cannot read the server's files).
    pub async fn any_column_contains(&self, needle: &str) -> bool {
        let rows: i64 = match self {
            TestDb::Sqlite(pool) => sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM credential_versions WHERE instr(encrypted_credentials, ?1) > 0) \
                 + (SELECT count(*) FROM credential_audit_log WHERE instr(action_details, ?1) > 0) \
                 + (SELECT count(*) FROM credential_use_journal WHERE instr(action_details, ?1) > 0)",
            )
            .bind(needle)
            .fetch_one(pool)
            .await
            .unwrap(),
            TestDb::Postgres(pool) => sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM credential_versions WHERE position(convert_to($1, 'UTF8') IN encrypted_credentials) > 0) \
                 + (SELECT count(*) FROM credential_audit_log WHERE position($1 IN action_details) > 0)",
            )
            .bind(needle)
            .fetch_one(pool)
            .await
            .unwrap(),
        };
        rows > 0
    }

    /// Forces everything to the database's files (WAL checkpoint), so a byte search sees it.
    pub async fn checkpoint(&self) {
        match self {
            TestDb::Sqlite(pool) => {
                sqlx::query("PRAGMA wal_checkpoint(FULL)").execute(pool).await.unwrap();
            }
            TestDb::Postgres(pool) => {
                sqlx::query("CHECKPOINT").execute(pool).await.unwrap();
            }
        }
    }
}
