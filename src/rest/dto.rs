//! The dashboard's JSON shapes (the seed's API examples), and their conversions to and from
//! domain values. Field names follow the seed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::domain::{
    CredentialMetadata, FieldViolation, Finding, Provider, SecretPayload, Verification, VerifyOutcome,
    VersionMetadata,
};

mod summary;
pub(super) use summary::{SummaryBody, SummaryQuery};

/// `POST /api/v1/credentials`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateCredential {
    #[schema(value_type = ProviderName)]
    pub(super) provider: String,
    /// 1 to 255 characters, unique among the customer's active credentials of the provider.
    #[schema(example = "Production Vultr", min_length = 1, max_length = 255)]
    pub(super) credential_name: String,
    /// The provider's secret fields: vultr `api_key`; aws `access_key_id`, `secret_access_key`,
    /// optional `session_token`; gcp `service_account_json`; azure `tenant_id`, `client_id`,
    /// `client_secret`, optional `subscription_id`.
    #[schema(value_type = BTreeMap<String, String>, example = json!({"api_key": "YOUR-VULTR-API-KEY"}))]
    pub(super) credentials: SecretFields,
    /// api_key, access_key, service_account, client_secret...; the provider's usual kind if absent.
    #[serde(default)]
    #[schema(example = "api_key")]
    pub(super) credential_type: Option<String>,
    /// read_only (default), read_write or admin.
    #[serde(default)]
    #[schema(example = "read_only")]
    pub(super) permissions: Option<String>,
    /// Make this the default credential for Get by provider.
    #[serde(default)]
    pub(super) make_default: bool,
    /// Verify the secret with its provider once stored (true unless false is sent). An
    /// unreachable provider never fails the request, which waits for it at most the verify
    /// timeout (10 s by default).
    #[serde(default = "verify_by_default")]
    #[schema(default = true)]
    pub(super) verify: bool,
}

/// The dashboard verifies what it writes unless told not to.
fn verify_by_default() -> bool {
    true
}

/// A cloud provider, as the document describes it. Requests carry the name as a string, parsed
/// by the handler so that an unknown one gets credvault's error, not serde's.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase", example = "vultr")]
#[allow(dead_code, reason = "a schema only: no value of it is ever made")]
pub(super) enum ProviderName {
    Vultr,
    Aws,
    Gcp,
    Azure,
}

/// Secret fields as sent; each value is wiped when dropped.
#[derive(Default, Deserialize)]
#[serde(transparent)]
pub(super) struct SecretFields(BTreeMap<String, Zeroizing<String>>);

impl std::fmt::Debug for SecretFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl SecretFields {
    /// Moves the fields into the provider's typed secret, refusing unknown ones.
    pub(super) fn into_secret(self, provider: Provider) -> Result<SecretPayload, FieldViolation> {
        SecretPayload::from_fields(provider, self.0)
    }
}

/// Answer to `POST /api/v1/credentials` (the seed's shape, plus the stored metadata).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Created {
    pub(super) credential_id: String,
    #[schema(example = "Credential 'Production Vultr' created successfully")]
    pub(super) message: String,
    pub(super) provider: String,
    pub(super) credential: Credential,
    /// The provider's verdict on the secret; absent when `verify` was false, and on a replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) verification: Option<Verdict>,
}

/// A provider's verdict on a secret just written.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Verdict {
    /// valid, invalid or unreachable (could not check; nothing concluded).
    #[schema(example = "valid")]
    pub(super) outcome: String,
    pub(super) is_valid: bool,
    pub(super) reason: String,
    pub(super) identity: BTreeMap<String, String>,
    pub(super) findings: Vec<FindingBody>,
}

impl From<Verification> for Verdict {
    fn from(v: Verification) -> Self {
        Self {
            outcome: v.outcome.as_str().to_owned(),
            is_valid: v.outcome == VerifyOutcome::Valid,
            reason: v.reason,
            identity: v.identity,
            findings: v.findings.into_iter().map(FindingBody::from).collect(),
        }
    }
}

/// A credential's metadata; never a secret.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Credential {
    pub(super) id: String,
    pub(super) customer_id: String,
    #[schema(example = "vultr")]
    pub(super) provider: String,
    pub(super) credential_name: String,
    #[schema(example = "api_key")]
    pub(super) credential_type: String,
    #[schema(example = "read_only")]
    pub(super) permissions: String,
    pub(super) is_active: bool,
    pub(super) is_verified: bool,
    pub(super) is_default: bool,
    #[schema(format = DateTime)]
    pub(super) last_verified_at: Option<String>,
    #[schema(format = DateTime)]
    pub(super) last_used_at: Option<String>,
    pub(super) usage_count: i64,
    #[schema(format = DateTime)]
    pub(super) created_at: String,
    #[schema(format = DateTime)]
    pub(super) updated_at: String,
    /// The version Get hands out (the newest enabled one); null when no version is enabled.
    pub(super) current_version: Option<u32>,
    /// How many versions the credential has had.
    pub(super) version_count: u32,
    /// When the current version was added; null when no version is enabled.
    #[schema(format = DateTime)]
    pub(super) rotated_at: Option<String>,
    /// Changes with every change of the metadata or versions; send it back in `If-Match`.
    #[schema(example = "r3")]
    pub(super) etag: String,
    /// For a deleted credential: when its versions will be destroyed (it can be restored until then).
    #[schema(format = DateTime)]
    pub(super) scheduled_purge_at: Option<String>,
    /// When every version was destroyed; null unless purged.
    #[schema(format = DateTime)]
    pub(super) purged_at: Option<String>,
    /// unverified, verified, invalid or failing (invalid several times in a row).
    #[schema(example = "verified")]
    pub(super) verification_state: String,
    /// What the provider reported about the identity at the last valid verification (account id,
    /// ARN, client email, tenant...). Never a secret.
    pub(super) identity: BTreeMap<String, String>,
    /// Findings of the last verification of the current version.
    pub(super) findings: Vec<FindingBody>,
    /// Invalid answers in a row since the last valid one.
    pub(super) consecutive_failures: u32,
    /// When the streak of invalid answers that made the credential failing began.
    #[schema(format = DateTime)]
    pub(super) failing_since: Option<String>,
}

/// Something a security reviewer should look at.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct FindingBody {
    /// aws_root_user_key, vultr_manages_users, gcp_user_managed_key,
    /// azure_subscription_not_enabled or key_age.
    #[schema(example = "key_age")]
    pub(super) code: String,
    /// What was found and what to do about it.
    pub(super) detail: String,
}

impl From<Finding> for FindingBody {
    fn from(f: Finding) -> Self {
        Self { code: f.code, detail: f.detail }
    }
}

pub(super) use crate::domain::rfc3339;

impl From<CredentialMetadata> for Credential {
    fn from(c: CredentialMetadata) -> Self {
        Self {
            id: c.id.to_string(),
            customer_id: c.customer_id.to_string(),
            provider: c.provider.as_str().to_owned(),
            credential_name: c.name.as_str().to_owned(),
            credential_type: c.credential_type.as_str().to_owned(),
            permissions: c.permissions.as_str().to_owned(),
            is_active: c.is_active,
            is_verified: c.is_verified,
            is_default: c.is_default,
            last_verified_at: c.last_verified_at.map(rfc3339),
            last_used_at: c.last_used_at.map(rfc3339),
            usage_count: c.usage_count,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
            current_version: c.current_version,
            version_count: c.latest_version,
            rotated_at: c.rotated_at.map(rfc3339),
            etag: c.etag.to_string(),
            scheduled_purge_at: c.purge_at.map(rfc3339),
            purged_at: c.purged_at.map(rfc3339),
            verification_state: c.verification_state().as_str().to_owned(),
            consecutive_failures: c.verification.failures,
            failing_since: c.verification.failing_since.map(rfc3339),
            identity: c.verification.identity,
            findings: c.verification.findings.into_iter().map(FindingBody::from).collect(),
        }
    }
}

/// `PUT /api/v1/credentials/{credential_id}`: a new secret for the credential (rotation).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateCredential {
    /// The credential's provider (a new version keeps it).
    #[schema(value_type = ProviderName)]
    pub(super) provider: String,
    /// The new secret's fields, as in `POST /api/v1/credentials`.
    #[schema(value_type = BTreeMap<String, String>, example = json!({"api_key": "NEW-VULTR-API-KEY"}))]
    pub(super) credentials: SecretFields,
    /// Also disable the version that was current until now.
    #[serde(default)]
    pub(super) disable_previous: bool,
    /// Verify the new secret with its provider once added (true unless false is sent).
    #[serde(default = "verify_by_default")]
    #[schema(default = true)]
    pub(super) verify: bool,
}

/// `PATCH /api/v1/credentials/{credential_id}`: the fields present change, the others stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateCredential {
    /// 1 to 255 characters, unique among the customer's active credentials of the provider.
    #[serde(default)]
    #[schema(example = "Production Vultr (EU)", min_length = 1, max_length = 255)]
    pub(super) credential_name: Option<String>,
    /// api_key, access_key, ...; an empty string means the provider's usual kind.
    #[serde(default)]
    pub(super) credential_type: Option<String>,
    /// read_only, read_write or admin.
    #[serde(default)]
    #[schema(example = "read_write")]
    pub(super) permissions: Option<String>,
    /// Make it the default for Get by provider (clearing any other), or not.
    #[serde(default)]
    pub(super) is_default: Option<bool>,
}

/// One version's metadata; never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Version {
    pub(super) credential_id: String,
    #[schema(example = 2)]
    pub(super) version: u32,
    /// enabled, disabled or destroyed.
    #[schema(example = "enabled")]
    pub(super) state: String,
    /// The name of the token that added it; null for versions from before versions existed.
    pub(super) created_by: Option<String>,
    #[schema(format = DateTime)]
    pub(super) created_at: String,
    #[schema(format = DateTime)]
    pub(super) destroyed_at: Option<String>,
}

impl From<VersionMetadata> for Version {
    fn from(v: VersionMetadata) -> Self {
        Self {
            credential_id: v.credential_id.to_string(),
            version: v.version,
            state: v.state.as_str().to_owned(),
            created_by: v.created_by,
            created_at: rfc3339(v.created_at),
            destroyed_at: v.destroyed_at.map(rfc3339),
        }
    }
}

/// A credential and one of its versions, after a change.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CredentialVersion {
    pub(super) credential: Credential,
    pub(super) version: Version,
    /// True when this answer replays an earlier rotation with the same Idempotency-Key.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) replayed: bool,
    /// The provider's verdict on the new secret; absent unless it was verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) verification: Option<Verdict>,
}

/// Query of `GET /api/v1/credentials/{credential_id}/versions`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct VersionsQuery {
    /// At most this many per page (0 or absent: 50; at most 500). The next page's token comes
    /// in the `X-Next-Page-Token` response header.
    #[serde(default)]
    pub(super) page_size: Option<i32>,
    #[serde(default)]
    pub(super) page_token: Option<String>,
}

/// Answer to `DELETE /api/v1/credentials/{credential_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Deleted {
    pub(super) credential_id: String,
    pub(super) message: String,
    pub(super) provider: String,
    pub(super) credential: Credential,
}

/// `POST /api/v1/credentials/verify`: a stored credential by id, or inline credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifyBody {
    /// A stored credential's id; or leave out and give provider + credentials.
    #[serde(default)]
    pub(super) credential_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<ProviderName>)]
    pub(super) provider: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub(super) credentials: Option<SecretFields>,
}

/// The provider's verdict.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Verified {
    /// valid, invalid or unreachable (could not check; nothing concluded).
    #[schema(example = "valid")]
    pub(super) outcome: String,
    pub(super) is_valid: bool,
    pub(super) reason: String,
    pub(super) identity: BTreeMap<String, String>,
    /// The findings' details as plain text (see `findings` for their codes).
    pub(super) warnings: Vec<String>,
    pub(super) findings: Vec<FindingBody>,
    /// The stored credential after verification; null for inline credentials.
    pub(super) credential: Option<Credential>,
}

impl Verified {
    pub(super) fn new(v: Verification, credential: Option<CredentialMetadata>) -> Self {
        Self {
            outcome: v.outcome.as_str().to_owned(),
            is_valid: v.outcome == VerifyOutcome::Valid,
            reason: v.reason,
            identity: v.identity,
            warnings: v.findings.iter().map(|f| f.detail.clone()).collect(),
            findings: v.findings.into_iter().map(FindingBody::from).collect(),
            credential: credential.map(Credential::from),
        }
    }
}

/// `GET /api/v1/credentials/{provider_or_id}`: a page of a provider's credentials, or one
/// credential.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum ListedOrOne {
    #[expect(
        dead_code,
        reason = "list pages serialize their Vec<Credential> directly; this names their shape"
    )]
    Listed(Vec<Credential>),
    One(Box<Credential>),
}

/// Query of the list endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Also return deleted credentials.
    #[serde(default)]
    pub(super) include_inactive: bool,
    /// At most this many per page (0 or absent: 50; at most 500). The next page's token comes
    /// in the `X-Next-Page-Token` response header.
    #[serde(default)]
    pub(super) page_size: Option<i32>,
    #[serde(default)]
    pub(super) page_token: Option<String>,
}

/// Every error: `{"error": {"code": ..., "message": ..., "field": ...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ErrorBody {
    pub(super) error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ErrorDetail {
    /// A stable code: invalid_argument, malformed_json, payload_too_large, unauthenticated,
    /// permission_denied, not_found, already_exists, failed_precondition, aborted (an
    /// If-Match that no longer matches), unavailable, data_loss, not_implemented, internal.
    pub(super) code: String,
    /// What went wrong and how to fix it.
    pub(super) message: String,
    /// The offending field, for invalid_argument.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) field: Option<String>,
}
