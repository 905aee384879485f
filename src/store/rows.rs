//! Stored rows decoded into domain values, once for every backend. The backends store the same
//! columns in their own types (SQLite: ids as text, times as microseconds; PostgreSQL: `uuid`
//! and `timestamptz`); each says how it reads one column ([`StoredRow`]) and everything built
//! from columns lives here.

use time::OffsetDateTime;
use uuid::Uuid;

use super::versions::VersionHead;
use super::{ChainHead, ChainLink, ChainPart, SealedCredential, SealedVersion, SignedRow, StoreError};
use crate::domain::{
    AuditEvent, CredentialId, CredentialMetadata, CredentialName, CredentialType, Customer, CustomerBinding,
    CustomerId, CustomerStatus, Email, Etag, Finding, Permission, Provider, ProviderCounts, Scopes,
    SubscriptionTier, TokenId, TokenName, TokenRecord, VerificationState, VerificationStatus,
    VersionMetadata, VersionNumber, VersionState,
};

/// One column of a stored row, read as the domain's type, in a backend's own encoding.
pub(super) trait StoredRow {
    fn optional_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn optional_uuid(&self, column: &str) -> Result<Option<Uuid>, StoreError>;
    fn optional_integer(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn optional_time(&self, column: &str) -> Result<Option<OffsetDateTime>, StoreError>;
    fn optional_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn flag(&self, column: &str) -> Result<bool, StoreError>;

    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.optional_text(column)?.ok_or_else(|| null(column))
    }

    fn uuid(&self, column: &str) -> Result<Uuid, StoreError> {
        self.optional_uuid(column)?.ok_or_else(|| null(column))
    }

    fn integer(&self, column: &str) -> Result<i64, StoreError> {
        self.optional_integer(column)?.ok_or_else(|| null(column))
    }

    fn time(&self, column: &str) -> Result<OffsetDateTime, StoreError> {
        self.optional_time(column)?.ok_or_else(|| null(column))
    }

    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        self.optional_bytes(column)?.ok_or_else(|| null(column))
    }
}

/// A stored value the schema does not allow.
pub(super) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Other(format!("stored {what} {value:?} is not valid").into())
}

fn null(column: &str) -> StoreError {
    StoreError::Other(format!("stored {column} is NULL").into())
}

/// A credential's metadata, from the columns every credential query selects.
pub(super) fn metadata(row: &impl StoredRow) -> Result<CredentialMetadata, StoreError> {
    let provider = row.text("provider")?;
    let permissions = row.text("permissions")?;
    Ok(CredentialMetadata {
        id: CredentialId::from_uuid(row.uuid("id")?),
        customer_id: CustomerId::from_uuid(row.uuid("customer_id")?),
        provider: Provider::parse(&provider).ok_or_else(|| corrupt("provider", &provider))?,
        name: CredentialName::from_stored(row.text("credential_name")?),
        credential_type: CredentialType::from_stored(row.text("credential_type")?),
        permissions: Permission::parse(&permissions).ok_or_else(|| corrupt("permissions", &permissions))?,
        is_active: row.flag("is_active")?,
        is_verified: row.flag("is_verified")?,
        is_default: row.flag("is_default")?,
        last_verified_at: row.optional_time("last_verified_at")?,
        last_used_at: row.optional_time("last_used_at")?,
        usage_count: row.integer("usage_count")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        current_version: row.optional_integer("current_version")?.map(version_number).transpose()?,
        latest_version: version_number(row.integer("latest_version")?)?,
        rotated_at: row.optional_time("rotated_at")?,
        etag: Etag::from_revision(row.integer("revision")?),
        purge_at: row.optional_time("purge_at")?,
        purged_at: row.optional_time("purged_at")?,
        verification: verification_status(row)?,
    })
}

/// What verifying a credential established (`verified_identity` and `verification_findings`
/// are JSON the store wrote, see [`identity_json`] and [`findings_json`]).
fn verification_status(row: &impl StoredRow) -> Result<VerificationStatus, StoreError> {
    let identity = match row.optional_text("verified_identity")? {
        Some(json) => serde_json::from_str(&json).map_err(|_| corrupt("verified identity", "(JSON)"))?,
        None => Default::default(),
    };
    let findings = match row.optional_text("verification_findings")? {
        Some(json) => serde_json::from_str(&json).map_err(|_| corrupt("verification findings", "(JSON)"))?,
        None => Vec::new(),
    };
    let failures = row.integer("verification_failures")?;
    Ok(VerificationStatus {
        identity,
        findings,
        failures: u32::try_from(failures)
            .map_err(|_| corrupt("verification failures", &failures.to_string()))?,
        first_failed_at: row.optional_time("first_failed_at")?,
        failing_since: row.optional_time("failing_since")?,
    })
}

/// A credential claimed for scheduled verification (`id, provider`).
pub(super) fn claimed_verification(row: &impl StoredRow) -> Result<(CredentialId, Provider), StoreError> {
    let provider = row.text("provider")?;
    let provider = Provider::parse(&provider).ok_or_else(|| corrupt("provider", &provider))?;
    Ok((CredentialId::from_uuid(row.uuid("id")?), provider))
}

/// The rows of [`super::sql::SUMMARY_COUNTS`], in provider order.
pub(super) fn provider_counts<R: StoredRow>(rows: &[R]) -> Result<Vec<ProviderCounts>, StoreError> {
    let mut counts = rows
        .iter()
        .map(|row| {
            let provider = row.text("provider")?;
            Ok(ProviderCounts {
                provider: Provider::parse(&provider).ok_or_else(|| corrupt("provider", &provider))?,
                total: row.integer("total")?,
                active: row.integer("active")?,
                verified: row.integer("verified")?,
                disabled: row.integer("disabled")?,
                pending_deletion: row.integer("pending_deletion")?,
                failing: row.integer("failing")?,
                risky: row.integer("risky")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    counts.sort_by_key(|c| c.provider);
    Ok(counts)
}

/// The rows of [`super::sql::VERIFICATION_STATE_COUNTS`] (`state, credentials`), every state
/// present.
pub(super) fn verification_state_counts<R: StoredRow>(
    rows: &[R],
) -> Result<Vec<(VerificationState, i64)>, StoreError> {
    let mut counts: Vec<(VerificationState, i64)> = VerificationState::ALL.iter().map(|s| (*s, 0)).collect();
    for row in rows {
        let state = row.text("state")?;
        let slot = counts
            .iter_mut()
            .find(|(s, _)| s.as_str() == state)
            .ok_or_else(|| corrupt("verification state", &state))?;
        slot.1 = row.integer("credentials")?;
    }
    Ok(counts)
}

/// A verified identity as stored: a JSON object, or NULL when there is none.
pub(super) fn identity_json(identity: &std::collections::BTreeMap<String, String>) -> Option<String> {
    (!identity.is_empty()).then(|| serde_json::to_string(identity).expect("a map of strings serializes"))
}

/// Verification findings as stored: a JSON array, or NULL when there are none.
pub(super) fn findings_json(findings: &[Finding]) -> Option<String> {
    (!findings.is_empty()).then(|| serde_json::to_string(findings).expect("findings serialize"))
}

fn version_number(value: i64) -> Result<VersionNumber, StoreError> {
    VersionNumber::try_from(value).map_err(|_| corrupt("version number", &value.to_string()))
}

fn version_state(value: &str) -> Result<VersionState, StoreError> {
    VersionState::parse(value).ok_or_else(|| corrupt("version state", value))
}

/// Get's read: the metadata, the version asked for (`served_version`, `version_state`,
/// `encrypted_credentials`; the state is NULL when there is no such version) and the owner's
/// status.
pub(super) fn sealed_credential(row: &impl StoredRow) -> Result<SealedCredential, StoreError> {
    let version = match row.optional_text("version_state")? {
        None => None,
        Some(state) => Some(SealedVersion {
            number: version_number(row.integer("served_version")?)?,
            state: version_state(&state)?,
            sealed: row.optional_bytes("encrypted_credentials")?,
        }),
    };
    Ok(SealedCredential {
        metadata: metadata(row)?,
        version,
        customer_status: customer_status(&row.text("customer_status")?)?,
    })
}

/// A version as listed.
pub(super) fn version(row: &impl StoredRow) -> Result<VersionMetadata, StoreError> {
    Ok(VersionMetadata {
        credential_id: CredentialId::from_uuid(row.uuid("credential_id")?),
        version: version_number(row.integer("version")?)?,
        state: version_state(&row.text("state")?)?,
        created_by: row.optional_text("created_by")?,
        created_at: row.time("created_at")?,
        destroyed_at: row.optional_time("destroyed_at")?,
    })
}

/// What the version operations check (`customer_id, provider, current_version, latest_version,
/// revision`).
pub(super) fn version_head(row: &impl StoredRow) -> Result<VersionHead, StoreError> {
    let provider = row.text("provider")?;
    Ok(VersionHead {
        customer_id: CustomerId::from_uuid(row.uuid("customer_id")?),
        provider: Provider::parse(&provider).ok_or_else(|| corrupt("provider", &provider))?,
        current_version: row.optional_integer("current_version")?.map(version_number).transpose()?,
        latest_version: version_number(row.integer("latest_version")?)?,
        etag: Etag::from_revision(row.integer("revision")?),
    })
}

/// An audit row as the log lists it.
pub(super) fn audit_event(row: &impl StoredRow) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        id: row.uuid("id")?,
        credential_id: row.optional_uuid("credential_id")?.map(CredentialId::from_uuid),
        customer_id: row.optional_uuid("customer_id")?.map(CustomerId::from_uuid),
        action: row.text("action")?,
        details: row.text("action_details")?,
        ip_address: row.optional_text("ip_address")?,
        actor: row.optional_text("actor")?,
        created_at: row.time("created_at")?,
    })
}

/// An audit row with its MAC, as the chain reads it.
pub(super) fn signed_audit_row(row: &impl StoredRow) -> Result<SignedRow, StoreError> {
    Ok(SignedRow { event: audit_event(row)?, row_mac: row.optional_bytes("row_mac")? })
}

/// A link joined with the row it seals: the link's `seq`, `audit_id` and `hash`, `found` (true if
/// the log has the row), and the row's columns.
pub(super) fn sealed_part(row: &impl StoredRow) -> Result<ChainPart, StoreError> {
    let sealed = if row.flag("found")? { Some(signed_audit_row(row)?) } else { None };
    Ok(ChainPart::Sealed(chain_link(row)?, sealed))
}

/// A row no link seals.
pub(super) fn unsealed_part(row: &impl StoredRow) -> Result<ChainPart, StoreError> {
    Ok(ChainPart::Unsealed(signed_audit_row(row)?))
}

/// The audit chain's head (`audit_seal`'s one row).
pub(super) fn chain_head(row: &impl StoredRow) -> Result<ChainHead, StoreError> {
    Ok(ChainHead { seq: row.integer("seq")?, hash: row.bytes("hash")?, mac: row.optional_bytes("mac")? })
}

/// One link of the audit chain.
pub(super) fn chain_link(row: &impl StoredRow) -> Result<ChainLink, StoreError> {
    Ok(ChainLink { seq: row.integer("seq")?, audit_id: row.uuid("audit_id")?, hash: row.bytes("hash")? })
}

pub(super) fn customer(row: &impl StoredRow) -> Result<Customer, StoreError> {
    let id = CustomerId::from_uuid(row.uuid("id")?);
    let corrupt =
        |what: &str| StoreError::Other(format!("stored customer {id} has an invalid {what}").into());
    Ok(Customer {
        id,
        email: Email::from_stored(row.text("email")?),
        company_name: row.text("company_name")?,
        status: CustomerStatus::parse(&row.text("status")?).ok_or_else(|| corrupt("status"))?,
        tier: SubscriptionTier::parse(&row.text("subscription_tier")?)
            .ok_or_else(|| corrupt("subscription tier"))?,
        created_at: row.time("created_at")?,
        recovery_window: std::time::Duration::from_secs(
            u64::try_from(row.integer("recovery_window_secs")?).map_err(|_| corrupt("recovery window"))?,
        ),
    })
}

pub(super) fn customer_status(value: &str) -> Result<CustomerStatus, StoreError> {
    CustomerStatus::parse(value).ok_or_else(|| corrupt("customer status", value))
}

/// A token's row (its hash, never a secret).
pub(super) fn token(row: &impl StoredRow) -> Result<TokenRecord, StoreError> {
    let id = TokenId::from_uuid(row.uuid("id")?);
    let corrupt = |what: &str| StoreError::Other(format!("stored token {id} has an invalid {what}").into());
    Ok(TokenRecord {
        id,
        name: TokenName::from_stored(row.text("name")?),
        scopes: Scopes::parse(&row.text("scopes")?, "scopes").map_err(|_| corrupt("scope list"))?,
        customer: CustomerBinding::parse(&row.text("customer")?, "customer")
            .map_err(|_| corrupt("customer"))?,
        secret_hash: row.bytes("secret_hash")?.as_slice().try_into().map_err(|_| corrupt("secret hash"))?,
        created_at: row.time("created_at")?,
        expires_at: row.optional_time("expires_at")?,
        revoked_at: row.optional_time("revoked_at")?,
    })
}

/// A master-key version's use (see [`super::Store::key_usage`]).
pub(super) fn key_usage(row: &impl StoredRow) -> Result<super::KeyUsage, StoreError> {
    let version = row.integer("version")?;
    Ok(super::KeyUsage {
        version: u32::try_from(version).map_err(|_| corrupt("key version", &version.to_string()))?,
        recorded_at: row.optional_time("created_at")?,
        data_keys: row.integer("data_keys")?,
        customer_keys: row.integer("customer_keys")?,
        made_current_at: row.optional_time("made_current_at")?,
        retired_at: row.optional_time("retired_at")?,
    })
}

/// A stored data key with the row it is bound to, for the rewrap.
pub(super) fn wrapped_data_key(row: &impl StoredRow) -> Result<super::WrappedDataKey, StoreError> {
    let provider = row.text("provider")?;
    let key_version = row.integer("key_version")?;
    Ok(super::WrappedDataKey {
        credential_id: CredentialId::from_uuid(row.uuid("credential_id")?),
        customer_id: CustomerId::from_uuid(row.uuid("customer_id")?),
        provider: Provider::parse(&provider).ok_or_else(|| corrupt("provider", &provider))?,
        version: version_number(row.integer("version")?)?,
        key_version: u32::try_from(key_version)
            .map_err(|_| corrupt("key version", &key_version.to_string()))?,
        sealed: row.bytes("encrypted_credentials")?,
    })
}

/// An audit checkpoint.
pub(super) fn checkpoint(row: &impl StoredRow) -> Result<super::Checkpoint, StoreError> {
    let retired = row.integer("retired_version")?;
    Ok(super::Checkpoint {
        seq: row.integer("seq")?,
        hash: row.bytes("hash")?,
        mac: row.bytes("mac")?,
        retired_version: u32::try_from(retired).map_err(|_| corrupt("key version", &retired.to_string()))?,
    })
}

/// A customer's key record: a key wrapped by the master-key version its column names (and its
/// own header repeats), or none once destroyed.
pub(super) fn customer_key(row: &impl StoredRow) -> Result<super::StoredCustomerKey, StoreError> {
    let wrapped = match (row.optional_integer("key_version")?, row.optional_bytes("wrapped")?) {
        (Some(version), Some(bytes)) => {
            let named = crate::crypto::wrapping_version(&bytes).ok();
            if named.map(i64::from) != Some(version) {
                return Err(corrupt("wrapped customer key", "its header names another key version"));
            }
            Some(crate::crypto::WrappedCustomerKey { bytes, key_version: named.expect("checked above") })
        }
        (None, None) => None,
        _ => return Err(corrupt("customer key", "a key version without a key, or a key without one")),
    };
    Ok(super::StoredCustomerKey {
        customer_id: CustomerId::from_uuid(row.uuid("customer_id")?),
        wrapped,
        created_at: row.time("created_at")?,
        destroyed_at: row.optional_time("destroyed_at")?,
    })
}
