//! The PostgreSQL backend's API tokens: issuing, lookup, listing, revocation.

use super::*;
use crate::store::TokenStore;

#[async_trait]
impl TokenStore for PostgresStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, scopes, customer, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token.id.as_uuid())
        .bind(token.name.as_str())
        .bind(token.scopes.to_string())
        .bind(token.customer.to_string())
        .bind(token.secret_hash.as_slice())
        .bind(to_stored_precision(token.created_at))
        .bind(token.expires_at.map(to_stored_precision))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_on_unique(e, Taken::TokenName(token.name.as_str())))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_token(&self, id: TokenId) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", token_columns!(), " FROM api_tokens WHERE id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::token).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows =
            sqlx::query(concat!("SELECT ", token_columns!(), " FROM api_tokens ORDER BY created_at, id"))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(rows::token).collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn revoke_token(&self, name: &TokenName, now: OffsetDateTime) -> Result<TokenRecord, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $1) WHERE name = $2 RETURNING ",
            token_columns!()
        ))
        .bind(to_stored_precision(now))
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("token {:?}", name.as_str())))?;
        rows::token(&row)
    }
}
