"""credvault's Python client: fetch a customer's cloud credentials in one line.

    from credvault import CredvaultClient
    vault = CredvaultClient("credvault.internal:50051")          # token from CREDVAULT_TOKEN
    api_key = vault.get_credential(customer_id, "vultr").api_key
"""

from ._channel import Tls
from ._plans import RetryPolicy
from .aio import AsyncCredvaultClient
from .client import CredvaultClient
from .errors import (
    Conflict,
    CredentialNotFound,
    CredvaultError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from .models import (
    AwsCredential,
    AzureCredential,
    Credential,
    CredentialInfo,
    FetchedCredential,
    Finding,
    GcpCredential,
    ProviderSummary,
    Rotated,
    Summary,
    Verification,
    Version,
    VultrCredential,
)

__all__ = [
    "AsyncCredvaultClient",
    "AwsCredential",
    "AzureCredential",
    "Conflict",
    "Credential",
    "CredentialInfo",
    "CredentialNotFound",
    "CredvaultClient",
    "CredvaultError",
    "FailedPrecondition",
    "FetchedCredential",
    "FieldViolation",
    "Finding",
    "GcpCredential",
    "InvalidArgument",
    "PermissionDenied",
    "ProviderSummary",
    "RetryPolicy",
    "Rotated",
    "Summary",
    "Tls",
    "Unauthenticated",
    "Unavailable",
    "Verification",
    "Version",
    "VultrCredential",
]
