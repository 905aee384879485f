"""What the client returns: a credential's metadata, and a fetched credential typed by provider
with its secret fields. ``repr()`` and ``str()`` never show a secret field."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Provider = Literal["vultr", "aws", "gcp", "azure"]
PROVIDERS: tuple[Provider, ...] = ("vultr", "aws", "gcp", "azure")


VerificationState = Literal["unverified", "verified", "invalid", "failing"]


@dataclass(frozen=True, kw_only=True)
class Finding:
    """Something a security reviewer should look at: a stable ``code`` (``aws_root_user_key``,
    ``key_age``, ...) and a ``detail`` for people."""

    code: str
    detail: str


@dataclass(frozen=True, kw_only=True)
class CredentialInfo:
    """A credential's metadata (never a secret)."""

    id: str
    customer_id: str
    provider: Provider
    name: str
    credential_type: str
    permissions: str
    is_active: bool
    is_verified: bool
    is_default: bool
    last_verified_at: datetime | None
    last_used_at: datetime | None
    usage_count: int
    created_at: datetime | None
    updated_at: datetime | None
    current_version: int | None
    version_count: int
    rotated_at: datetime | None
    etag: str
    scheduled_purge_at: datetime | None
    purged_at: datetime | None
    #: Where the credential stands with its provider (``failing``: invalid several times in a row).
    verification_state: VerificationState = "unverified"
    #: What the provider reported about the identity at the last valid verification.
    identity: dict[str, str] = field(default_factory=dict)
    #: Findings of the last verification of the current version.
    findings: tuple[Finding, ...] = ()
    consecutive_failures: int = 0
    failing_since: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class FetchedCredential:
    """A credential handed out by Get: its metadata (after this use was counted), the version
    served, and the secret fields of its provider's subclass."""

    info: CredentialInfo
    version: int

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def provider(self) -> Provider:
        return self.info.provider

    def to_seed_dict(self) -> dict[str, str]:
        """The secret as the seed's ``CredentialManager.get_credential`` returned it."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class VultrCredential(FetchedCredential):
    api_key: str = field(repr=False)

    def to_seed_dict(self) -> dict[str, str]:
        return {"api_key": self.api_key}


@dataclass(frozen=True, kw_only=True)
class AwsCredential(FetchedCredential):
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def to_seed_dict(self) -> dict[str, str]:
        shape = {"access_key_id": self.access_key_id, "secret_access_key": self.secret_access_key}
        if self.session_token is not None:
            shape["session_token"] = self.session_token
        return shape


@dataclass(frozen=True, kw_only=True)
class GcpCredential(FetchedCredential):
    service_account_json: str = field(repr=False)

    def to_seed_dict(self) -> dict[str, str]:
        return {"service_account_json": self.service_account_json}


@dataclass(frozen=True, kw_only=True)
class AzureCredential(FetchedCredential):
    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    subscription_id: str | None = None

    def to_seed_dict(self) -> dict[str, str]:
        shape = {"tenant_id": self.tenant_id, "client_id": self.client_id, "client_secret": self.client_secret}
        if self.subscription_id is not None:
            shape["subscription_id"] = self.subscription_id
        return shape


Credential = VultrCredential | AwsCredential | GcpCredential | AzureCredential


@dataclass(frozen=True, kw_only=True)
class Version:
    """One version of a credential, as rotation answers it."""

    version: int
    state: str
    created_by: str
    created_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class Rotated:
    credential: CredentialInfo
    version: Version
    replayed: bool


@dataclass(frozen=True, kw_only=True)
class ProviderSummary:
    total: int
    active: int
    verified: int
    disabled: int
    pending_deletion: int
    failing: int = 0
    risky: int = 0


@dataclass(frozen=True, kw_only=True)
class Summary:
    customer_id: str
    total_credentials: int
    providers: dict[Provider, ProviderSummary]


@dataclass(frozen=True, kw_only=True)
class Verification:
    """What the provider said: ``outcome`` is valid, invalid or unreachable (could not check)."""

    outcome: Literal["valid", "invalid", "unreachable"]
    reason: str
    identity: dict[str, str]
    warnings: list[str]
    credential: CredentialInfo | None

    @property
    def is_valid(self) -> bool:
        return self.outcome == "valid"
