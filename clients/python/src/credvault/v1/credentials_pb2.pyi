import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Provider(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROVIDER_UNSPECIFIED: _ClassVar[Provider]
    PROVIDER_VULTR: _ClassVar[Provider]
    PROVIDER_AWS: _ClassVar[Provider]
    PROVIDER_GCP: _ClassVar[Provider]
    PROVIDER_AZURE: _ClassVar[Provider]

class Permission(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PERMISSION_UNSPECIFIED: _ClassVar[Permission]
    PERMISSION_READ_ONLY: _ClassVar[Permission]
    PERMISSION_READ_WRITE: _ClassVar[Permission]
    PERMISSION_ADMIN: _ClassVar[Permission]

class VerificationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERIFICATION_STATE_UNSPECIFIED: _ClassVar[VerificationState]
    VERIFICATION_STATE_UNVERIFIED: _ClassVar[VerificationState]
    VERIFICATION_STATE_VERIFIED: _ClassVar[VerificationState]
    VERIFICATION_STATE_INVALID: _ClassVar[VerificationState]
    VERIFICATION_STATE_FAILING: _ClassVar[VerificationState]

class VersionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERSION_STATE_UNSPECIFIED: _ClassVar[VersionState]
    VERSION_STATE_ENABLED: _ClassVar[VersionState]
    VERSION_STATE_DISABLED: _ClassVar[VersionState]
    VERSION_STATE_DESTROYED: _ClassVar[VersionState]

class VerifyOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERIFY_OUTCOME_UNSPECIFIED: _ClassVar[VerifyOutcome]
    VERIFY_OUTCOME_VALID: _ClassVar[VerifyOutcome]
    VERIFY_OUTCOME_INVALID: _ClassVar[VerifyOutcome]
    VERIFY_OUTCOME_UNREACHABLE: _ClassVar[VerifyOutcome]
PROVIDER_UNSPECIFIED: Provider
PROVIDER_VULTR: Provider
PROVIDER_AWS: Provider
PROVIDER_GCP: Provider
PROVIDER_AZURE: Provider
PERMISSION_UNSPECIFIED: Permission
PERMISSION_READ_ONLY: Permission
PERMISSION_READ_WRITE: Permission
PERMISSION_ADMIN: Permission
VERIFICATION_STATE_UNSPECIFIED: VerificationState
VERIFICATION_STATE_UNVERIFIED: VerificationState
VERIFICATION_STATE_VERIFIED: VerificationState
VERIFICATION_STATE_INVALID: VerificationState
VERIFICATION_STATE_FAILING: VerificationState
VERSION_STATE_UNSPECIFIED: VersionState
VERSION_STATE_ENABLED: VersionState
VERSION_STATE_DISABLED: VersionState
VERSION_STATE_DESTROYED: VersionState
VERIFY_OUTCOME_UNSPECIFIED: VerifyOutcome
VERIFY_OUTCOME_VALID: VerifyOutcome
VERIFY_OUTCOME_INVALID: VerifyOutcome
VERIFY_OUTCOME_UNREACHABLE: VerifyOutcome

class VultrSecret(_message.Message):
    __slots__ = ("api_key",)
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    def __init__(self, api_key: _Optional[str] = ...) -> None: ...

class AwsSecret(_message.Message):
    __slots__ = ("access_key_id", "secret_access_key", "session_token")
    ACCESS_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SECRET_ACCESS_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    access_key_id: str
    secret_access_key: str
    session_token: str
    def __init__(self, access_key_id: _Optional[str] = ..., secret_access_key: _Optional[str] = ..., session_token: _Optional[str] = ...) -> None: ...

class GcpSecret(_message.Message):
    __slots__ = ("service_account_json",)
    SERVICE_ACCOUNT_JSON_FIELD_NUMBER: _ClassVar[int]
    service_account_json: str
    def __init__(self, service_account_json: _Optional[str] = ...) -> None: ...

class AzureSecret(_message.Message):
    __slots__ = ("tenant_id", "client_id", "client_secret", "subscription_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    client_id: str
    client_secret: str
    subscription_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., client_id: _Optional[str] = ..., client_secret: _Optional[str] = ..., subscription_id: _Optional[str] = ...) -> None: ...

class CredentialSecret(_message.Message):
    __slots__ = ("vultr", "aws", "gcp", "azure")
    VULTR_FIELD_NUMBER: _ClassVar[int]
    AWS_FIELD_NUMBER: _ClassVar[int]
    GCP_FIELD_NUMBER: _ClassVar[int]
    AZURE_FIELD_NUMBER: _ClassVar[int]
    vultr: VultrSecret
    aws: AwsSecret
    gcp: GcpSecret
    azure: AzureSecret
    def __init__(self, vultr: _Optional[_Union[VultrSecret, _Mapping]] = ..., aws: _Optional[_Union[AwsSecret, _Mapping]] = ..., gcp: _Optional[_Union[GcpSecret, _Mapping]] = ..., azure: _Optional[_Union[AzureSecret, _Mapping]] = ...) -> None: ...

class Credential(_message.Message):
    __slots__ = ("id", "customer_id", "provider", "credential_name", "credential_type", "permissions", "is_active", "is_verified", "is_default", "last_verified_at", "last_used_at", "usage_count", "created_at", "updated_at", "current_version", "version_count", "rotated_at", "etag", "scheduled_purge_at", "purged_at", "verification_state", "identity", "findings", "consecutive_failures", "failing_since")
    class IdentityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_NAME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_TYPE_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    IS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    IS_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    LAST_VERIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    USAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    ROTATED_AT_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_PURGE_AT_FIELD_NUMBER: _ClassVar[int]
    PURGED_AT_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_STATE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    FAILING_SINCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    customer_id: str
    provider: Provider
    credential_name: str
    credential_type: str
    permissions: Permission
    is_active: bool
    is_verified: bool
    is_default: bool
    last_verified_at: _timestamp_pb2.Timestamp
    last_used_at: _timestamp_pb2.Timestamp
    usage_count: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    current_version: int
    version_count: int
    rotated_at: _timestamp_pb2.Timestamp
    etag: str
    scheduled_purge_at: _timestamp_pb2.Timestamp
    purged_at: _timestamp_pb2.Timestamp
    verification_state: VerificationState
    identity: _containers.ScalarMap[str, str]
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    consecutive_failures: int
    failing_since: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., customer_id: _Optional[str] = ..., provider: _Optional[_Union[Provider, str]] = ..., credential_name: _Optional[str] = ..., credential_type: _Optional[str] = ..., permissions: _Optional[_Union[Permission, str]] = ..., is_active: _Optional[bool] = ..., is_verified: _Optional[bool] = ..., is_default: _Optional[bool] = ..., last_verified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., usage_count: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., current_version: _Optional[int] = ..., version_count: _Optional[int] = ..., rotated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ..., scheduled_purge_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., purged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., verification_state: _Optional[_Union[VerificationState, str]] = ..., identity: _Optional[_Mapping[str, str]] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., consecutive_failures: _Optional[int] = ..., failing_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("code", "detail")
    CODE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    code: str
    detail: str
    def __init__(self, code: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class CredentialVersion(_message.Message):
    __slots__ = ("credential_id", "version", "state", "created_by", "created_at", "destroyed_at")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DESTROYED_AT_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    version: int
    state: VersionState
    created_by: str
    created_at: _timestamp_pb2.Timestamp
    destroyed_at: _timestamp_pb2.Timestamp
    def __init__(self, credential_id: _Optional[str] = ..., version: _Optional[int] = ..., state: _Optional[_Union[VersionState, str]] = ..., created_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., destroyed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpdateCredentialRequest(_message.Message):
    __slots__ = ("credential_id", "credential_name", "credential_type", "permissions", "is_default", "update_mask", "etag")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_NAME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_TYPE_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    credential_name: str
    credential_type: str
    permissions: Permission
    is_default: bool
    update_mask: _field_mask_pb2.FieldMask
    etag: str
    def __init__(self, credential_id: _Optional[str] = ..., credential_name: _Optional[str] = ..., credential_type: _Optional[str] = ..., permissions: _Optional[_Union[Permission, str]] = ..., is_default: _Optional[bool] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class UpdateCredentialResponse(_message.Message):
    __slots__ = ("credential",)
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    credential: Credential
    def __init__(self, credential: _Optional[_Union[Credential, _Mapping]] = ...) -> None: ...

class RestoreCredentialRequest(_message.Message):
    __slots__ = ("credential_id",)
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    def __init__(self, credential_id: _Optional[str] = ...) -> None: ...

class RestoreCredentialResponse(_message.Message):
    __slots__ = ("credential",)
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    credential: Credential
    def __init__(self, credential: _Optional[_Union[Credential, _Mapping]] = ...) -> None: ...

class PurgeCredentialRequest(_message.Message):
    __slots__ = ("credential_id",)
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    def __init__(self, credential_id: _Optional[str] = ...) -> None: ...

class PurgeCredentialResponse(_message.Message):
    __slots__ = ("credential",)
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    credential: Credential
    def __init__(self, credential: _Optional[_Union[Credential, _Mapping]] = ...) -> None: ...

class AddVersionRequest(_message.Message):
    __slots__ = ("credential_id", "secret", "disable_previous", "etag", "idempotency_key", "verify")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    DISABLE_PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    VERIFY_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    secret: CredentialSecret
    disable_previous: bool
    etag: str
    idempotency_key: str
    verify: bool
    def __init__(self, credential_id: _Optional[str] = ..., secret: _Optional[_Union[CredentialSecret, _Mapping]] = ..., disable_previous: _Optional[bool] = ..., etag: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., verify: _Optional[bool] = ...) -> None: ...

class AddVersionResponse(_message.Message):
    __slots__ = ("credential", "version", "replayed", "verification")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    credential: Credential
    version: CredentialVersion
    replayed: bool
    verification: VerificationResult
    def __init__(self, credential: _Optional[_Union[Credential, _Mapping]] = ..., version: _Optional[_Union[CredentialVersion, _Mapping]] = ..., replayed: _Optional[bool] = ..., verification: _Optional[_Union[VerificationResult, _Mapping]] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ("credential_id", "page_size", "page_token")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    page_size: int
    page_token: str
    def __init__(self, credential_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[CredentialVersion]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[CredentialVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DisableVersionRequest(_message.Message):
    __slots__ = ("credential_id", "version", "etag")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    version: int
    etag: str
    def __init__(self, credential_id: _Optional[str] = ..., version: _Optional[int] = ..., etag: _Optional[str] = ...) -> None: ...

class DisableVersionResponse(_message.Message):
    __slots__ = ("credential", "version")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    credential: Credential
    version: CredentialVersion
    def __init__(self, credential: _Optional[_Union[Credential, _Mapping]] = ..., version: _Optional[_Union[CredentialVersion, _Mapping]] = ...) -> None: ...

class EnableVersionRequest(_message.Message):
    __slots__ = ("credential_id", "version", "etag")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    version: int
    etag: str
    def __init__(self, credential_id: _Optional[str] = ..., version: _Optional[int] = ..., etag: _Optional[str] = ...) -> None: ...

class EnableVersionResponse(_message.Message):
    __slots__ = ("credential", "version")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    credential: Credential
    version: CredentialVersion
    def __init__(self, credential: _Optional[_Union[Credential, _Mapping]] = ..., version: _Optional[_Union[CredentialVersion, _Mapping]] = ...) -> None: ...

class DestroyVersionRequest(_message.Message):
    __slots__ = ("credential_id", "version", "etag")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    version: int
    etag: str
    def __init__(self, credential_id: _Optional[str] = ..., version: _Optional[int] = ..., etag: _Optional[str] = ...) -> None: ...

class DestroyVersionResponse(_message.Message):
    __slots__ = ("credential", "version")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    credential: Credential
    version: CredentialVersion
    def __init__(self, credential: _Optional[_Union[Credential, _Mapping]] = ..., version: _Optional[_Union[CredentialVersion, _Mapping]] = ...) -> None: ...

class StoreRequest(_message.Message):
    __slots__ = ("customer_id", "credential_name", "credential_type", "permissions", "secret", "idempotency_key", "make_default", "verify")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_NAME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_TYPE_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    MAKE_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    VERIFY_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    credential_name: str
    credential_type: str
    permissions: Permission
    secret: CredentialSecret
    idempotency_key: str
    make_default: bool
    verify: bool
    def __init__(self, customer_id: _Optional[str] = ..., credential_name: _Optional[str] = ..., credential_type: _Optional[str] = ..., permissions: _Optional[_Union[Permission, str]] = ..., secret: _Optional[_Union[CredentialSecret, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., make_default: _Optional[bool] = ..., verify: _Optional[bool] = ...) -> None: ...

class StoreResponse(_message.Message):
    __slots__ = ("credential", "replayed", "verification")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    credential: Credential
    replayed: bool
    verification: VerificationResult
    def __init__(self, credential: _Optional[_Union[Credential, _Mapping]] = ..., replayed: _Optional[bool] = ..., verification: _Optional[_Union[VerificationResult, _Mapping]] = ...) -> None: ...

class VerificationResult(_message.Message):
    __slots__ = ("outcome", "reason", "identity", "findings")
    class IdentityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    outcome: VerifyOutcome
    reason: str
    identity: _containers.ScalarMap[str, str]
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    def __init__(self, outcome: _Optional[_Union[VerifyOutcome, str]] = ..., reason: _Optional[str] = ..., identity: _Optional[_Mapping[str, str]] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ...) -> None: ...

class ProviderSelector(_message.Message):
    __slots__ = ("customer_id", "provider")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    provider: Provider
    def __init__(self, customer_id: _Optional[str] = ..., provider: _Optional[_Union[Provider, str]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("credential_id", "by_provider", "version")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    BY_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    by_provider: ProviderSelector
    version: int
    def __init__(self, credential_id: _Optional[str] = ..., by_provider: _Optional[_Union[ProviderSelector, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("credential", "secret", "version")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    credential: Credential
    secret: CredentialSecret
    version: int
    def __init__(self, credential: _Optional[_Union[Credential, _Mapping]] = ..., secret: _Optional[_Union[CredentialSecret, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("customer_id", "provider", "include_inactive", "page_size", "page_token")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_INACTIVE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    provider: Provider
    include_inactive: bool
    page_size: int
    page_token: str
    def __init__(self, customer_id: _Optional[str] = ..., provider: _Optional[_Union[Provider, str]] = ..., include_inactive: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("credentials", "next_page_token")
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    credentials: _containers.RepeatedCompositeFieldContainer[Credential]
    next_page_token: str
    def __init__(self, credentials: _Optional[_Iterable[_Union[Credential, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("credential_id", "secret")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    secret: CredentialSecret
    def __init__(self, credential_id: _Optional[str] = ..., secret: _Optional[_Union[CredentialSecret, _Mapping]] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("outcome", "reason", "identity", "warnings", "credential", "findings")
    class IdentityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    outcome: VerifyOutcome
    reason: str
    identity: _containers.ScalarMap[str, str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    credential: Credential
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    def __init__(self, outcome: _Optional[_Union[VerifyOutcome, str]] = ..., reason: _Optional[str] = ..., identity: _Optional[_Mapping[str, str]] = ..., warnings: _Optional[_Iterable[str]] = ..., credential: _Optional[_Union[Credential, _Mapping]] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("credential_id",)
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    def __init__(self, credential_id: _Optional[str] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("credential",)
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    credential: Credential
    def __init__(self, credential: _Optional[_Union[Credential, _Mapping]] = ...) -> None: ...

class SummaryRequest(_message.Message):
    __slots__ = ("customer_id", "credentials_per_provider")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_PER_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    credentials_per_provider: int
    def __init__(self, customer_id: _Optional[str] = ..., credentials_per_provider: _Optional[int] = ...) -> None: ...

class ProviderSummary(_message.Message):
    __slots__ = ("provider", "total", "active", "verified", "credentials", "disabled", "pending_deletion", "failing", "risky", "next_page_token")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    PENDING_DELETION_FIELD_NUMBER: _ClassVar[int]
    FAILING_FIELD_NUMBER: _ClassVar[int]
    RISKY_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    provider: Provider
    total: int
    active: int
    verified: int
    credentials: _containers.RepeatedCompositeFieldContainer[Credential]
    disabled: int
    pending_deletion: int
    failing: int
    risky: int
    next_page_token: str
    def __init__(self, provider: _Optional[_Union[Provider, str]] = ..., total: _Optional[int] = ..., active: _Optional[int] = ..., verified: _Optional[int] = ..., credentials: _Optional[_Iterable[_Union[Credential, _Mapping]]] = ..., disabled: _Optional[int] = ..., pending_deletion: _Optional[int] = ..., failing: _Optional[int] = ..., risky: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SummaryResponse(_message.Message):
    __slots__ = ("customer_id", "total_credentials", "providers")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    total_credentials: int
    providers: _containers.RepeatedCompositeFieldContainer[ProviderSummary]
    def __init__(self, customer_id: _Optional[str] = ..., total_credentials: _Optional[int] = ..., providers: _Optional[_Iterable[_Union[ProviderSummary, _Mapping]]] = ...) -> None: ...
