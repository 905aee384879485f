//! proto <-> domain conversions. Parsing happens here, once; field paths in errors are the
//! proto field names, so a client can find the field it sent.

use prost_types::Timestamp;
use time::OffsetDateTime;

use crate::domain::{
    CredentialMetadata, FieldViolation, Finding, Permission, Provider, ProviderSummary, SecretPayload,
    Summary, Verification, VerificationState, VerifyOutcome, VersionMetadata, VersionState,
};
use crate::proto as pb;
use crate::vault::Verified;

pub(super) fn provider_from_proto(value: i32, field: &str) -> Result<Provider, FieldViolation> {
    match pb::Provider::try_from(value) {
        Ok(pb::Provider::Vultr) => Ok(Provider::Vultr),
        Ok(pb::Provider::Aws) => Ok(Provider::Aws),
        Ok(pb::Provider::Gcp) => Ok(Provider::Gcp),
        Ok(pb::Provider::Azure) => Ok(Provider::Azure),
        Ok(pb::Provider::Unspecified) => Err(FieldViolation::new(
            field,
            "is required: one of PROVIDER_VULTR, PROVIDER_AWS, PROVIDER_GCP, PROVIDER_AZURE",
        )),
        Err(_) => Err(FieldViolation::new(
            field,
            format!(
                "{value} is not a known provider: use PROVIDER_VULTR, PROVIDER_AWS, PROVIDER_GCP or PROVIDER_AZURE"
            ),
        )),
    }
}

/// An optional provider filter: unspecified means every provider.
pub(super) fn provider_filter_from_proto(
    value: i32,
    field: &str,
) -> Result<Option<Provider>, FieldViolation> {
    if value == pb::Provider::Unspecified as i32 {
        return Ok(None);
    }
    provider_from_proto(value, field).map(Some)
}

pub(super) fn provider_to_proto(provider: Provider) -> pb::Provider {
    match provider {
        Provider::Vultr => pb::Provider::Vultr,
        Provider::Aws => pb::Provider::Aws,
        Provider::Gcp => pb::Provider::Gcp,
        Provider::Azure => pb::Provider::Azure,
    }
}

pub(super) fn permission_from_proto(value: i32, field: &str) -> Result<Permission, FieldViolation> {
    match pb::Permission::try_from(value) {
        Ok(pb::Permission::Unspecified | pb::Permission::ReadOnly) => Ok(Permission::ReadOnly),
        Ok(pb::Permission::ReadWrite) => Ok(Permission::ReadWrite),
        Ok(pb::Permission::Admin) => Ok(Permission::Admin),
        Err(_) => Err(FieldViolation::new(
            field,
            format!(
                "{value} is not a known permission: use PERMISSION_READ_ONLY, PERMISSION_READ_WRITE or PERMISSION_ADMIN"
            ),
        )),
    }
}

fn permission_to_proto(permission: Permission) -> pb::Permission {
    match permission {
        Permission::ReadOnly => pb::Permission::ReadOnly,
        Permission::ReadWrite => pb::Permission::ReadWrite,
        Permission::Admin => pb::Permission::Admin,
    }
}

/// Moves the secret out of the request message into a zeroizing domain value (a move, not a
/// copy, so no unwiped duplicate is left in our code).
pub(super) fn secret_from_proto(
    secret: Option<pb::CredentialSecret>,
    field: &str,
) -> Result<SecretPayload, FieldViolation> {
    use pb::credential_secret::Secret;
    let missing = || {
        FieldViolation::new(
            field,
            "is required: set exactly one of vultr, aws, gcp or azure (the case decides the provider)",
        )
    };
    Ok(match secret.and_then(|s| s.secret).ok_or_else(missing)? {
        Secret::Vultr(v) => SecretPayload::Vultr { api_key: v.api_key },
        Secret::Aws(v) => SecretPayload::Aws {
            access_key_id: v.access_key_id,
            secret_access_key: v.secret_access_key,
            session_token: v.session_token,
        },
        Secret::Gcp(v) => SecretPayload::Gcp { service_account_json: v.service_account_json },
        Secret::Azure(v) => SecretPayload::Azure {
            tenant_id: v.tenant_id,
            client_id: v.client_id,
            client_secret: v.client_secret,
            subscription_id: v.subscription_id,
        },
    })
}

/// Copies the secret into the response message. From here on its lifetime is prost's and
/// tonic's (encoded and dropped when the response is sent); the domain value is wiped on drop.
pub(super) fn secret_to_proto(secret: &SecretPayload) -> pb::CredentialSecret {
    use pb::credential_secret::Secret;
    let secret = match secret {
        SecretPayload::Vultr { api_key } => Secret::Vultr(pb::VultrSecret { api_key: api_key.clone() }),
        SecretPayload::Aws { access_key_id, secret_access_key, session_token } => {
            Secret::Aws(pb::AwsSecret {
                access_key_id: access_key_id.clone(),
                secret_access_key: secret_access_key.clone(),
                session_token: session_token.clone(),
            })
        }
        SecretPayload::Gcp { service_account_json } => {
            Secret::Gcp(pb::GcpSecret { service_account_json: service_account_json.clone() })
        }
        SecretPayload::Azure { tenant_id, client_id, client_secret, subscription_id } => {
            Secret::Azure(pb::AzureSecret {
                tenant_id: tenant_id.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                subscription_id: subscription_id.clone(),
            })
        }
    };
    pb::CredentialSecret { secret: Some(secret) }
}

pub(super) fn timestamp(t: OffsetDateTime) -> Timestamp {
    Timestamp {
        seconds: t.unix_timestamp(),
        nanos: i32::try_from(t.nanosecond()).expect("nanoseconds are below 10^9"),
    }
}

pub(super) fn credential_to_proto(c: CredentialMetadata) -> pb::Credential {
    let verification_state = match c.verification_state() {
        VerificationState::Unverified => pb::VerificationState::Unverified,
        VerificationState::Verified => pb::VerificationState::Verified,
        VerificationState::Invalid => pb::VerificationState::Invalid,
        VerificationState::Failing => pb::VerificationState::Failing,
    };
    pb::Credential {
        id: c.id.to_string(),
        customer_id: c.customer_id.to_string(),
        provider: provider_to_proto(c.provider) as i32,
        credential_name: c.name.as_str().to_owned(),
        credential_type: c.credential_type.as_str().to_owned(),
        permissions: permission_to_proto(c.permissions) as i32,
        is_active: c.is_active,
        is_verified: c.is_verified,
        is_default: c.is_default,
        last_verified_at: c.last_verified_at.map(timestamp),
        last_used_at: c.last_used_at.map(timestamp),
        usage_count: c.usage_count,
        created_at: Some(timestamp(c.created_at)),
        updated_at: Some(timestamp(c.updated_at)),
        current_version: c.current_version.unwrap_or(0),
        version_count: c.latest_version,
        rotated_at: c.rotated_at.map(timestamp),
        etag: c.etag.to_string(),
        scheduled_purge_at: c.purge_at.map(timestamp),
        purged_at: c.purged_at.map(timestamp),
        verification_state: verification_state as i32,
        consecutive_failures: c.verification.failures,
        failing_since: c.verification.failing_since.map(timestamp),
        identity: c.verification.identity.into_iter().collect(),
        findings: c.verification.findings.into_iter().map(finding_to_proto).collect(),
    }
}

fn finding_to_proto(f: Finding) -> pb::Finding {
    pb::Finding { code: f.code, detail: f.detail }
}

pub(super) fn version_to_proto(v: VersionMetadata) -> pb::CredentialVersion {
    let state = match v.state {
        VersionState::Enabled => pb::VersionState::Enabled,
        VersionState::Disabled => pb::VersionState::Disabled,
        VersionState::Destroyed => pb::VersionState::Destroyed,
    };
    pb::CredentialVersion {
        credential_id: v.credential_id.to_string(),
        version: v.version,
        state: state as i32,
        created_by: v.created_by.unwrap_or_default(),
        created_at: Some(timestamp(v.created_at)),
        destroyed_at: v.destroyed_at.map(timestamp),
    }
}

fn outcome_to_proto(outcome: VerifyOutcome) -> pb::VerifyOutcome {
    match outcome {
        VerifyOutcome::Valid => pb::VerifyOutcome::Valid,
        VerifyOutcome::Invalid => pb::VerifyOutcome::Invalid,
        VerifyOutcome::Unreachable => pb::VerifyOutcome::Unreachable,
    }
}

/// The verdict on a secret just written (Store and AddVersion with `verify`).
pub(super) fn verification_result_to_proto(v: Verification) -> pb::VerificationResult {
    pb::VerificationResult {
        outcome: outcome_to_proto(v.outcome) as i32,
        reason: v.reason,
        identity: v.identity.into_iter().collect(),
        findings: v.findings.into_iter().map(finding_to_proto).collect(),
    }
}

pub(super) fn verification_to_proto(verified: Verified) -> pb::VerifyResponse {
    let v = verified.verification;
    pb::VerifyResponse {
        outcome: outcome_to_proto(v.outcome) as i32,
        reason: v.reason,
        identity: v.identity.into_iter().collect(),
        warnings: v.findings.iter().map(|f| f.detail.clone()).collect(),
        findings: v.findings.into_iter().map(finding_to_proto).collect(),
        credential: verified.credential.map(credential_to_proto),
    }
}

pub(super) fn summary_to_proto(summary: Summary) -> pb::SummaryResponse {
    pb::SummaryResponse {
        customer_id: summary.customer_id.to_string(),
        total_credentials: summary.total_credentials,
        providers: summary.providers.into_iter().map(provider_summary_to_proto).collect(),
    }
}

fn provider_summary_to_proto(p: ProviderSummary) -> pb::ProviderSummary {
    let counts = p.counts;
    pb::ProviderSummary {
        provider: provider_to_proto(counts.provider) as i32,
        total: counts.total,
        active: counts.active,
        verified: counts.verified,
        disabled: counts.disabled,
        pending_deletion: counts.pending_deletion,
        failing: counts.failing,
        risky: counts.risky,
        credentials: p.credentials.into_iter().map(credential_to_proto).collect(),
        next_page_token: p.next.map(|cursor| cursor.encode()).unwrap_or_default(),
    }
}
