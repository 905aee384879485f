//! Why the vault cannot serve yet, and the proof at start-up that the configured key is the one
//! the database was written with.

use super::error_chain;
use crate::crypto::Keyring;
use crate::store::{KeyCheck, KeyUsage, MakeCurrent, Store, StoreError};

/// Why the vault cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "the configured encryption key (version {0}) is not the key this database was written with; \
         start with the original CREDENTIAL_ENCRYPTION_KEY or key file (a different key cannot read the stored credentials)"
    )]
    WrongKey(u32),
    /// The database cannot be reached yet; worth retrying.
    #[error("the database is not reachable: {0}")]
    Unavailable(String),
    /// The database can be read but not written: serving would fail every write.
    #[error("{0}")]
    ReadOnly(String),
    /// Stored secrets are sealed under key versions the configuration lacks: (version, data
    /// keys and customer keys it wraps).
    #[error(
        "{}: add them to the key configuration (without them those secrets cannot be opened)",
        missing_versions(.0)
    )]
    MissingKeyVersions(Vec<(u32, i64, i64)>),
    /// The database's current key version (new secrets are sealed with it) is not configured.
    #[error(
        "the database's current key version is {0}, which the key configuration does not include: \
         add it as `{0}:<key>` to the key file (every instance needs a key before `credvault key rotate` \
         makes it current)"
    )]
    CurrentKeyMissing(u32),
    /// A version that was current once, and so made audit MACs, is not configured.
    #[error(
        "key version {0} was current once, so audit rows carry its MACs, and the key configuration does not \
         include it: keep `{0}:<key>` in the key file (decrypt-only) even once it wraps no data key"
    )]
    AuditKeyMissing(u32),
    #[error("cannot prepare the database: {0}")]
    Store(String),
}

fn missing_versions(missing: &[(u32, i64, i64)]) -> String {
    let list: Vec<String> = missing
        .iter()
        .map(|(version, data_keys, customer_keys)| match customer_keys {
            0 => format!("key version {version} ({data_keys} data keys)"),
            _ => format!("key version {version} ({data_keys} data keys, {customer_keys} customer keys)"),
        })
        .collect();
    format!("stored secrets are sealed under {}, which the configured key does not include", list.join(", "))
}

impl From<StoreError> for StartupError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => StartupError::Unavailable(error_chain(&e)),
            StoreError::ReadOnly(why) => StartupError::ReadOnly(why),
            other => StartupError::Store(error_chain(&other)),
        }
    }
}

/// Proves `keyring` holds the key the database was written with: each version's check value
/// matches the database's record of it, or is recorded if the database has none (its first
/// start with that version).
pub async fn prove_key(store: &dyn Store, keyring: &Keyring) -> Result<(), StartupError> {
    for version in keyring.versions() {
        let check = keyring.check_value(version).expect("versions() lists keys in the ring");
        match store.check_key(version, &check).await? {
            KeyCheck::Matches => {}
            KeyCheck::Recorded => {
                tracing::info!(key_version = version, "recorded a new encryption key version")
            }
            KeyCheck::Mismatch => return Err(StartupError::WrongKey(version)),
        }
    }
    Ok(())
}

/// Seals with the database's current key version (on a new database, makes the oldest
/// configured version current; concurrent first starts agree on one), reads bare audit MACs as
/// the database's first version's, and keys request fingerprints with the oldest version not
/// retired. Refuses a configuration lacking the current version or one whose audit MACs are in
/// the log and not vouched for by a checkpoint.
pub async fn adopt_current_key(store: &dyn Store, keyring: &Keyring) -> Result<(), StartupError> {
    adopt_current_key_with(store, keyring, &store.key_usage_present().await?).await
}

/// [`adopt_current_key`] with the database's key usage as read already.
pub(super) async fn adopt_current_key_with(
    store: &dyn Store,
    keyring: &Keyring,
    usage: &[KeyUsage],
) -> Result<(), StartupError> {
    let current = match store.current_key().await? {
        Some(current) => current,
        None => {
            let oldest = keyring.versions().next().expect("a keyring is never empty");
            let now = time::OffsetDateTime::now_utc();
            store.make_key_current(oldest, MakeCurrent::IfNone, None, now).await?
        }
    };
    if !keyring.has_version(current) {
        return Err(StartupError::CurrentKeyMissing(current));
    }
    let first = store.first_key().await?.unwrap_or(current);
    // Every version ever current made audit MACs; a retired one is vouched for by a checkpoint.
    let signed_audit: Vec<u32> = usage
        .iter()
        .filter(|k| k.made_current_at.is_some() && k.retired_at.is_none())
        .map(|k| k.version)
        .collect();
    if let Some(missing) = signed_audit.iter().copied().find(|v| !keyring.has_version(*v)) {
        return Err(StartupError::AuditKeyMissing(missing));
    }
    let first_retired = usage.iter().any(|k| k.version == first && k.retired_at.is_some());
    let anchor = if first_retired { signed_audit.iter().copied().min().unwrap_or(current) } else { first };
    if !keyring.set_anchor(anchor) {
        return Err(StartupError::AuditKeyMissing(anchor));
    }
    keyring.set_first_version(first);
    keyring.set_current(current);
    metrics::gauge!(crate::metrics::CURRENT_KEY_VERSION).set(f64::from(current));
    Ok(())
}

/// Refuses a keyring that lacks a version still wrapping stored data keys or customer keys:
/// serving would fail every Get of those secrets.
pub(super) fn require_versions_in_use(usage: &[KeyUsage], keyring: &Keyring) -> Result<(), StartupError> {
    let missing: Vec<(u32, i64, i64)> = usage
        .iter()
        .filter(|k| k.data_keys + k.customer_keys > 0 && !keyring.versions().any(|v| v == k.version))
        .map(|k| (k.version, k.data_keys, k.customer_keys))
        .collect();
    if missing.is_empty() { Ok(()) } else { Err(StartupError::MissingKeyVersions(missing)) }
}

impl StartupError {
    /// Whether retrying later can help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StartupError::Unavailable(_))
    }
}
