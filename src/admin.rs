//! Operator actions shared by the CLI and `serve --dev`: issuing, listing and revoking API
//! tokens; backing up and restoring a SQLite vault. They act as the operator (no token needed
//! at a terminal that already holds the database credentials), through the vault's use cases.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use crate::auth::{self, IssuedToken};
use crate::domain::{CustomerBinding, Scopes, TokenName, TokenRecord};
use aws_lc_rs::constant_time::verify_slices_are_equal;

use std::sync::Arc;

use crate::crypto::Keyring;
use crate::domain::CustomerId;
use crate::store::{PoolSettings, StoreError, sqlite_backup};
use crate::vault::{Directory, RequestContext, Vault, VaultError, error_chain};

/// Issues and records a token; the returned text is shown once.
pub async fn create_token(
    directory: &Directory,
    name: &str,
    scopes: &str,
    customer: &str,
    expires_in: Option<Duration>,
) -> Result<IssuedToken, String> {
    let name = TokenName::parse(name, "--name").map_err(|v| v.to_string())?;
    let scopes = Scopes::parse(scopes, "--scopes").map_err(|v| v.to_string())?;
    let customer = CustomerBinding::parse(customer, "--customer").map_err(|v| v.to_string())?;
    let operator = RequestContext::operator();
    if let CustomerBinding::One(id) = customer {
        directory.customer(&operator, id).await.map_err(|e| match e {
            VaultError::NotFound(_) => {
                format!("--customer: customer {id} not found (create it with `credvault customer create`)")
            }
            other => other.to_string(),
        })?;
    }
    let expires_at = expires_in.map(|d| OffsetDateTime::now_utc() + d);
    let issued = auth::issue(name, scopes, customer, expires_at).map_err(|_| "no randomness available")?;
    directory.record_token(&operator, &issued.record).await.map_err(|e| e.to_string())?;
    Ok(issued)
}

pub async fn list_tokens(directory: &Directory) -> Result<Vec<TokenRecord>, String> {
    directory.list_tokens(&RequestContext::operator()).await.map_err(|e| e.to_string())
}

pub async fn revoke_token(directory: &Directory, name: &str) -> Result<TokenRecord, String> {
    let name = TokenName::parse(name, "NAME").map_err(|v| v.to_string())?;
    directory.revoke_token(&RequestContext::operator(), &name).await.map_err(|e| e.to_string())
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
    let issued = create_token(vault.directory(), &name, "*", "*", None).await?;
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

/// Whether a backup was written with `keyring`'s key: every key version it records must be in
/// the ring with the same check value. `Ok(false)` if it records none (a vault never served).
fn backup_matches(inspected: &sqlite_backup::Inspected, keyring: &Keyring) -> Result<bool, String> {
    for (version, stored) in &inspected.keys {
        let ours = keyring.check_value(*version).ok_or_else(|| {
            format!("the backup was written with key version {version}, which the given key does not have")
        })?;
        if verify_slices_are_equal(stored, &ours).is_err() {
            return Err(format!(
                "the backup was written with another key (version {version}); without that key its \
                 credentials cannot be read: give the key it was written with"
            ));
        }
    }
    Ok(!inspected.keys.is_empty())
}

/// The SQLite database file `database_url` names; PostgreSQL has its own tools.
fn sqlite_file(database_url: &str, command: &str) -> Result<PathBuf, String> {
    if !database_url.starts_with("sqlite:") {
        return Err(format!(
            "`credvault {command}` is for SQLite; for PostgreSQL use pg_dump (`pg_dump -Fc -f vault.dump URL`) \
             and pg_restore, and keep the master key apart from the dump"
        ));
    }
    sqlite_backup::database_file(database_url).map_err(|e| error_chain(&e))
}

/// `credvault backup`: a consistent copy of a SQLite vault (safe while it serves), checked by
/// SQLite and, given the key, against it. Returns what to tell the operator.
pub async fn backup(database_url: &str, to: &Path, keyring: Option<&Keyring>) -> Result<String, String> {
    let database = sqlite_file(database_url, "backup")?;
    sqlite_backup::backup(&database, to).await.map_err(|e| error_chain(&e))?;
    let inspected = sqlite_backup::inspect(to).await.map_err(|e| error_chain(&e))?;
    if !inspected.intact {
        return Err(format!("the copy {} failed SQLite's integrity check", to.display()));
    }
    let key = match keyring.map(|k| backup_matches(&inspected, k)).transpose()? {
        Some(true) => "the given key opens it",
        Some(false) => "it records no key yet (a vault never served)",
        None => "no key given, so not checked against one: keep the key with the backup's record",
    };
    Ok(format!("backed up {} to {} (integrity checked; {key})", database.display(), to.display()))
}

/// `credvault restore`: puts a backup in place of a SQLite vault after checking that SQLite
/// finds it intact and that `keyring` is the key it was written with. No server may be using
/// the database meanwhile.
pub async fn restore(
    from: &Path,
    database_url: &str,
    keyring: &Arc<Keyring>,
    replace: bool,
) -> Result<String, String> {
    let database = sqlite_file(database_url, "restore")?;
    let inspected = sqlite_backup::inspect(from).await.map_err(|e| error_chain(&e))?;
    if !inspected.intact {
        return Err(format!("{} failed SQLite's integrity check: it is not a usable backup", from.display()));
    }
    if !backup_matches(&inspected, keyring)? {
        return Err(format!("{} records no key: it is not a backup of a vault that served", from.display()));
    }
    // A customer purged since the backup was taken stays purged: its key, which the backup
    // still holds, is destroyed again in the restored database.
    let purged =
        if replace && database.exists() { purged_customers(database_url).await? } else { Vec::new() };
    sqlite_backup::restore(from, &database, replace).map_err(|e| error_chain(&e))?;
    let reapplied = reapply_purges(database_url, keyring, &purged).await?;
    let purges = match reapplied {
        0 => String::new(),
        n => format!("; {n} customer purges made since the backup were applied again"),
    };
    Ok(format!("restored {} from {} (integrity and key checked){purges}", database.display(), from.display()))
}

/// The customers purged in the vault at `database_url`.
async fn purged_customers(database_url: &str) -> Result<Vec<(CustomerId, OffsetDateTime)>, String> {
    let store = crate::store::open(database_url, &PoolSettings::default(), None)
        .await
        .map_err(|e| error_chain(&e))?;
    let purged = async {
        store.migrate().await?;
        store.purged_customers().await
    }
    .await;
    store.close().await;
    purged.map_err(|e| {
        format!("cannot read the purged customers of the database being replaced: {}", error_chain(&e))
    })
}

/// Destroys again, in the restored vault, the keys of customers `purged` since its backup;
/// how many were destroyed (a customer the backup does not hold, or purged in it too, is skipped).
async fn reapply_purges(
    database_url: &str,
    keyring: &Arc<Keyring>,
    purged: &[(CustomerId, OffsetDateTime)],
) -> Result<usize, String> {
    if purged.is_empty() {
        return Ok(0);
    }
    let store = crate::store::open(database_url, &PoolSettings::default(), Some(keyring.clone()))
        .await
        .map_err(|e| error_chain(&e))?;
    let reapplied = async {
        store.migrate().await?;
        let operator = RequestContext::operator();
        let mut reapplied = 0;
        for (customer, at) in purged {
            let details = format!(
                "customer's key destroyed again after a restore from a backup taken before its purge (at {})",
                crate::domain::rfc3339(*at)
            );
            let audit =
                operator.audit(crate::domain::AuditAction::CustomerPurged, Some(*customer), None, details);
            match store.destroy_customer_key(*customer, audit, OffsetDateTime::now_utc()).await {
                Ok(()) => reapplied += 1,
                Err(StoreError::NotFound(_) | StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(reapplied)
    }
    .await;
    store.close().await;
    reapplied
        .map_err(|e| format!("cannot purge again the customers purged since the backup: {}", error_chain(&e)))
}
