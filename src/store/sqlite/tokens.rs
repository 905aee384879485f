//! The SQLite backend's API tokens: issuing, lookup, listing, revocation.

use super::*;
use crate::store::TokenStore;

#[async_trait]
impl TokenStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, scopes, customer, secret_hash, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(token.id.to_string())
        .bind(token.name.as_str())
        .bind(token.scopes.to_string())
        .bind(token.customer.to_string())
        .bind(token.secret_hash.as_slice())
        .bind(micros(token.created_at))
        .bind(token.expires_at.map(micros))
        .execute(&mut **self.writer.acquire().await?)
        .await
        .map_err(|e| conflict_on_unique(e, Taken::TokenName(token.name.as_str())))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_token(&self, id: TokenId) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", token_columns!(), " FROM api_tokens WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(rows::token).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows =
            sqlx::query(concat!("SELECT ", token_columns!(), " FROM api_tokens ORDER BY created_at, id"))
                .fetch_all(&self.reader)
                .await?;
        rows.iter().map(rows::token).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn revoke_token(&self, name: &TokenName, now: OffsetDateTime) -> Result<TokenRecord, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE name = ? RETURNING ",
            token_columns!()
        ))
        .bind(micros(now))
        .bind(name.as_str())
        .fetch_optional(&mut **self.writer.acquire().await?)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("token {:?}", name.as_str())))?;
        rows::token(&row)
    }
}
