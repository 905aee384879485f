//! The seed's database, read once by `credvault import pgcrypto`: its `customers`,
//! `cloud_credentials` (secrets still `pgp_sym_encrypt`ed) and `credential_audit_log`, in the
//! seed's schema. Rows are read as JSON (`to_jsonb`), so columns the seed's deployments added
//! or left out (created_at, updated_at) are simply present or absent. Read-only: nothing is
//! written to the source, and no key is sent to it.

use serde::Deserialize;
use sqlx::Row;
use sqlx::postgres::PgPoolOptions;
use time::OffsetDateTime;

use super::StoreError;

/// A customer row of the seed's schema.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceCustomer {
    pub id: uuid::Uuid,
    pub email: Option<String>,
    pub company_name: Option<String>,
    pub status: Option<String>,
    pub subscription_tier: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    pub created_at: Option<OffsetDateTime>,
}

/// A credential row of the seed's schema, its secret still encrypted.
#[derive(Clone, Deserialize)]
pub struct SourceCredential {
    pub id: uuid::Uuid,
    pub customer_id: uuid::Uuid,
    pub provider: Option<String>,
    pub credential_name: Option<String>,
    pub credential_type: Option<String>,
    pub permissions: Option<String>,
    pub is_active: Option<bool>,
    pub is_verified: Option<bool>,
    #[serde(default, deserialize_with = "timestamp")]
    pub last_verified_at: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "timestamp")]
    pub last_used_at: Option<OffsetDateTime>,
    pub usage_count: Option<i64>,
    #[serde(default, deserialize_with = "timestamp")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "timestamp")]
    pub updated_at: Option<OffsetDateTime>,
    /// The `pgp_sym_encrypt` output.
    #[serde(skip)]
    pub encrypted: Vec<u8>,
}

impl std::fmt::Debug for SourceCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceCredential").field("id", &self.id).field("provider", &self.provider).finish()
    }
}

/// An audit row of the seed's schema.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceAuditRow {
    pub id: uuid::Uuid,
    pub credential_id: Option<uuid::Uuid>,
    pub customer_id: Option<uuid::Uuid>,
    pub action: Option<String>,
    pub action_details: Option<serde_json::Value>,
    pub ip_address: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    pub created_at: Option<OffsetDateTime>,
}

/// Everything the import reads, in one snapshot of the source.
#[derive(Debug, Default)]
pub struct SeedData {
    pub customers: Vec<SourceCustomer>,
    pub credentials: Vec<SourceCredential>,
    pub audit: Vec<SourceAuditRow>,
}

/// PostgreSQL's `to_jsonb` of a timestamp (`2026-01-31T10:00:00.123456` without a zone, taken as
/// UTC as the seed wrote them, or with an offset for timestamptz).
fn timestamp<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
    use time::format_description::well_known::Rfc3339;
    let Some(text) = Option::<String>::deserialize(d)? else { return Ok(None) };
    let parsed = OffsetDateTime::parse(&text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339))
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a timestamp")))?;
    Ok(Some(parsed))
}

/// One row of `what`, from its `to_jsonb` text.
fn parse<T: serde::de::DeserializeOwned>(row: &sqlx::postgres::PgRow, what: &str) -> Result<T, StoreError> {
    let text: String = row.try_get("row")?;
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Config(format!("a {what} row does not have the seed's shape: {e}")))
}

/// Reads the whole source in one repeatable-read transaction (a consistent snapshot).
pub async fn read(url: &str) -> Result<SeedData, StoreError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::Config("the source must be a postgres:// or postgresql:// URL".into()));
    }
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(url)
        .await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let mut data = SeedData::default();
    for row in sqlx::query("SELECT to_jsonb(c)::text AS row FROM customers c ORDER BY id")
        .fetch_all(&mut *tx)
        .await?
    {
        data.customers.push(parse(&row, "customers")?);
    }
    let credentials = sqlx::query(
        "SELECT (to_jsonb(c) - 'encrypted_credentials')::text AS row, c.encrypted_credentials AS sealed \
         FROM cloud_credentials c ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in credentials {
        let mut credential: SourceCredential = parse(&row, "cloud_credentials")?;
        credential.encrypted = row.try_get::<Option<Vec<u8>>, _>("sealed")?.unwrap_or_default();
        data.credentials.push(credential);
    }
    let has_audit: bool = sqlx::query_scalar("SELECT to_regclass('credential_audit_log') IS NOT NULL")
        .fetch_one(&mut *tx)
        .await?;
    if has_audit {
        let rows = sqlx::query(
            "SELECT to_jsonb(a)::text AS row FROM credential_audit_log a ORDER BY created_at, id",
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            data.audit.push(parse(&row, "credential_audit_log")?);
        }
    }
    tx.commit().await?;
    pool.close().await;
    Ok(data)
}
