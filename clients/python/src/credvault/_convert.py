"""Between the generated messages and the client's models: shared by the sync and asyncio
clients, so both build the same requests and answer the same values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import cast

from google.protobuf.timestamp_pb2 import Timestamp

from .models import (
    PROVIDERS,
    AwsCredential,
    AzureCredential,
    Credential,
    CredentialInfo,
    GcpCredential,
    Provider,
    Finding,
    ProviderSummary,
    Rotated,
    Summary,
    Verification,
    VerificationState,
    Version,
    VultrCredential,
)
from .v1 import credentials_pb2 as pb

_PROVIDER_ENUM: dict[Provider, pb.Provider] = {
    "vultr": pb.PROVIDER_VULTR,
    "aws": pb.PROVIDER_AWS,
    "gcp": pb.PROVIDER_GCP,
    "azure": pb.PROVIDER_AZURE,
}
_PROVIDER_NAME = {value: name for name, value in _PROVIDER_ENUM.items()}
_PERMISSIONS: dict[str, pb.Permission] = {
    "read_only": pb.PERMISSION_READ_ONLY,
    "read_write": pb.PERMISSION_READ_WRITE,
    "admin": pb.PERMISSION_ADMIN,
}
_PERMISSION_NAME = {value: name for name, value in _PERMISSIONS.items()}
_STATES = {
    pb.VERSION_STATE_ENABLED: "enabled",
    pb.VERSION_STATE_DISABLED: "disabled",
    pb.VERSION_STATE_DESTROYED: "destroyed",
}
_VERIFICATION_STATES: dict[int, VerificationState] = {
    pb.VERIFICATION_STATE_UNVERIFIED: "unverified",
    pb.VERIFICATION_STATE_VERIFIED: "verified",
    pb.VERIFICATION_STATE_INVALID: "invalid",
    pb.VERIFICATION_STATE_FAILING: "failing",
}
_OUTCOMES = {
    pb.VERIFY_OUTCOME_VALID: "valid",
    pb.VERIFY_OUTCOME_INVALID: "invalid",
    pb.VERIFY_OUTCOME_UNREACHABLE: "unreachable",
}
_FIELDS: dict[Provider, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # (required, optional) secret fields, as the seed's dicts name them.
    "vultr": (("api_key",), ()),
    "aws": (("access_key_id", "secret_access_key"), ("session_token",)),
    "gcp": (("service_account_json",), ()),
    "azure": (("tenant_id", "client_id", "client_secret"), ("subscription_id",)),
}


def provider_enum(provider: str) -> pb.Provider:
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    return _PROVIDER_ENUM[provider]


def permission_enum(permissions: str) -> pb.Permission:
    if permissions not in _PERMISSIONS:
        raise ValueError(f"unknown permissions {permissions!r}; expected read_only, read_write or admin")
    return _PERMISSIONS[permissions]


def secret(provider: str, fields: Mapping[str, str]) -> pb.CredentialSecret:
    """The provider's secret from the seed's dict shape; unknown fields are refused here, missing
    or malformed ones by the server (which names the field)."""
    provider_enum(provider)
    required, optional = _FIELDS[cast(Provider, provider)]
    unknown = sorted(set(fields) - set(required) - set(optional))
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a {provider} secret field; expected {', '.join(required + optional)}")
    values = {name: fields.get(name, "") for name in required}
    values.update({name: fields[name] for name in optional if fields.get(name) is not None})
    if provider == "vultr":
        return pb.CredentialSecret(vultr=pb.VultrSecret(**values))
    if provider == "aws":
        return pb.CredentialSecret(aws=pb.AwsSecret(**values))
    if provider == "gcp":
        return pb.CredentialSecret(gcp=pb.GcpSecret(**values))
    return pb.CredentialSecret(azure=pb.AzureSecret(**values))


def _time(message: pb.Credential | pb.CredentialVersion, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    stamp: Timestamp = getattr(message, name)
    return stamp.ToDatetime(tzinfo=timezone.utc)


def info(c: pb.Credential) -> CredentialInfo:
    return CredentialInfo(
        id=c.id,
        customer_id=c.customer_id,
        provider=_PROVIDER_NAME[c.provider],
        name=c.credential_name,
        credential_type=c.credential_type,
        permissions=_PERMISSION_NAME.get(c.permissions, "unspecified"),
        is_active=c.is_active,
        is_verified=c.is_verified,
        is_default=c.is_default,
        last_verified_at=_time(c, "last_verified_at"),
        last_used_at=_time(c, "last_used_at"),
        usage_count=c.usage_count,
        created_at=_time(c, "created_at"),
        updated_at=_time(c, "updated_at"),
        current_version=c.current_version or None,
        version_count=c.version_count,
        rotated_at=_time(c, "rotated_at"),
        etag=c.etag,
        scheduled_purge_at=_time(c, "scheduled_purge_at"),
        purged_at=_time(c, "purged_at"),
        verification_state=_VERIFICATION_STATES.get(c.verification_state, "unverified"),
        identity=dict(c.identity),
        findings=tuple(Finding(code=f.code, detail=f.detail) for f in c.findings),
        consecutive_failures=c.consecutive_failures,
        failing_since=_time(c, "failing_since"),
    )



def fetched(response: pb.GetResponse) -> Credential:
    meta = info(response.credential)
    s = response.secret
    kind = s.WhichOneof("secret")
    if kind == "vultr":
        return VultrCredential(info=meta, version=response.version, api_key=s.vultr.api_key)
    if kind == "aws":
        return AwsCredential(
            info=meta,
            version=response.version,
            access_key_id=s.aws.access_key_id,
            secret_access_key=s.aws.secret_access_key,
            session_token=s.aws.session_token if s.aws.HasField("session_token") else None,
        )
    if kind == "gcp":
        return GcpCredential(info=meta, version=response.version, service_account_json=s.gcp.service_account_json)
    if kind == "azure":
        return AzureCredential(
            info=meta,
            version=response.version,
            tenant_id=s.azure.tenant_id,
            client_id=s.azure.client_id,
            client_secret=s.azure.client_secret,
            subscription_id=s.azure.subscription_id if s.azure.HasField("subscription_id") else None,
        )
    raise ValueError("the server answered Get without a secret")


def rotated(response: pb.AddVersionResponse) -> Rotated:
    v = response.version
    return Rotated(
        credential=info(response.credential),
        version=Version(version=v.version, state=_STATES.get(v.state, "unspecified"), created_by=v.created_by,
                        created_at=_time(v, "created_at")),
        replayed=response.replayed,
    )


def summary(response: pb.SummaryResponse) -> Summary:
    return Summary(
        customer_id=response.customer_id,
        total_credentials=response.total_credentials,
        providers={
            _PROVIDER_NAME[p.provider]: ProviderSummary(
                total=p.total, active=p.active, verified=p.verified, disabled=p.disabled,
                pending_deletion=p.pending_deletion, failing=p.failing, risky=p.risky,
            )
            for p in response.providers
        },
    )


def verification(response: pb.VerifyResponse) -> Verification:
    outcome = _OUTCOMES.get(response.outcome, "unreachable")
    return Verification(
        outcome=outcome,  # type: ignore[arg-type]
        reason=response.reason,
        identity=dict(response.identity),
        warnings=list(response.warnings),
        credential=info(response.credential) if response.HasField("credential") else None,
    )
