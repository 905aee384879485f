//! Operator actions shared by the CLI and `serve --dev`: issuing, listing and revoking API
//! tokens. They act on the store directly, as the operator (no token needed at a terminal that
//! already holds the database credentials).

use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use crate::auth::{self, IssuedToken};
use crate::domain::{CustomerBinding, Scopes, TokenName, TokenRecord};
use crate::store::Store;
use crate::vault::{Vault, error_chain};

/// Issues and records a token; the returned text is shown once.
pub async fn create_token(
    store: &dyn Store,
    name: &str,
    scopes: &str,
    customer: &str,
    expires_in: Option<Duration>,
) -> Result<IssuedToken, String> {
    let name = TokenName::parse(name, "--name").map_err(|v| v.to_string())?;
    let scopes = Scopes::parse(scopes, "--scopes").map_err(|v| v.to_string())?;
    let customer = CustomerBinding::parse(customer, "--customer").map_err(|v| v.to_string())?;
    if let CustomerBinding::One(id) = customer
        && !store.customer_exists(id).await.map_err(|e| error_chain(&e))?
    {
        return Err(format!(
            "--customer: customer {id} not found (create it with `credvault customer create`)"
        ));
    }
    let expires_at = expires_in.map(|d| OffsetDateTime::now_utc() + d);
    let issued = auth::issue(name, scopes, customer, expires_at).map_err(|_| "no randomness available")?;
    store.insert_token(&issued.record).await.map_err(|e| error_chain(&e))?;
    Ok(issued)
}

pub async fn list_tokens(store: &dyn Store) -> Result<Vec<TokenRecord>, String> {
    store.list_tokens().await.map_err(|e| error_chain(&e))
}

pub async fn revoke_token(store: &dyn Store, name: &str) -> Result<TokenRecord, String> {
    let name = TokenName::parse(name, "NAME").map_err(|v| v.to_string())?;
    store.revoke_token(&name, OffsetDateTime::now_utc()).await.map_err(|e| error_chain(&e))
}

/// `serve --dev`: the development token kept in `path` (0600), made anew, with every scope for
/// every customer, when the file is missing or its token no longer works.
pub async fn ensure_dev_token(vault: &Vault, path: &Path) -> Result<SecretString, String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let token = SecretString::from(text.trim().to_owned());
        if vault.authenticate(Some(&format!("Bearer {}", token.expose_secret()))).await.is_ok() {
            return Ok(token);
        }
        std::fs::remove_file(path).map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    }
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("dev-{}", &suffix[..8]);
    let issued = create_token(vault.store().as_ref(), &name, "*", "*", None).await?;
    crate::private_files::write_private_file(path, issued.token.expose_secret())
        .map_err(|e| format!("cannot write the dev token file {}: {e}", path.display()))?;
    tracing::warn!(path = %path.display(), token = name, "created a development token with every scope");
    Ok(issued.token)
}

/// One line per token for `credvault token list`; never the token itself.
pub fn describe(token: &TokenRecord, now: OffsetDateTime) -> String {
    let state = match (token.revoked_at, token.usable_at(now)) {
        (Some(_), _) => "revoked",
        (None, Ok(())) => "active",
        (None, Err(_)) => "expired",
    };
    let expires = token.expires_at.map_or_else(|| "never".to_owned(), |t| t.date().to_string());
    format!(
        "{name}\t{state}\tcustomer={customer}\tscopes={scopes}\texpires={expires}\tid={id}",
        name = token.name,
        customer = token.customer,
        scopes = token.scopes.to_string().replace(' ', ","),
        id = token.id,
    )
}
