import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CustomerStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CUSTOMER_STATUS_UNSPECIFIED: _ClassVar[CustomerStatus]
    CUSTOMER_STATUS_ACTIVE: _ClassVar[CustomerStatus]
    CUSTOMER_STATUS_TRIAL: _ClassVar[CustomerStatus]
    CUSTOMER_STATUS_SUSPENDED: _ClassVar[CustomerStatus]
    CUSTOMER_STATUS_CANCELLED: _ClassVar[CustomerStatus]

class SubscriptionTier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBSCRIPTION_TIER_UNSPECIFIED: _ClassVar[SubscriptionTier]
    SUBSCRIPTION_TIER_FREE: _ClassVar[SubscriptionTier]
    SUBSCRIPTION_TIER_STARTER: _ClassVar[SubscriptionTier]
    SUBSCRIPTION_TIER_PROFESSIONAL: _ClassVar[SubscriptionTier]
    SUBSCRIPTION_TIER_ENTERPRISE: _ClassVar[SubscriptionTier]
CUSTOMER_STATUS_UNSPECIFIED: CustomerStatus
CUSTOMER_STATUS_ACTIVE: CustomerStatus
CUSTOMER_STATUS_TRIAL: CustomerStatus
CUSTOMER_STATUS_SUSPENDED: CustomerStatus
CUSTOMER_STATUS_CANCELLED: CustomerStatus
SUBSCRIPTION_TIER_UNSPECIFIED: SubscriptionTier
SUBSCRIPTION_TIER_FREE: SubscriptionTier
SUBSCRIPTION_TIER_STARTER: SubscriptionTier
SUBSCRIPTION_TIER_PROFESSIONAL: SubscriptionTier
SUBSCRIPTION_TIER_ENTERPRISE: SubscriptionTier

class Customer(_message.Message):
    __slots__ = ("id", "email", "company_name", "status", "subscription_tier", "created_at", "recovery_window")
    ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    COMPANY_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_TIER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_WINDOW_FIELD_NUMBER: _ClassVar[int]
    id: str
    email: str
    company_name: str
    status: CustomerStatus
    subscription_tier: SubscriptionTier
    created_at: _timestamp_pb2.Timestamp
    recovery_window: _duration_pb2.Duration
    def __init__(self, id: _Optional[str] = ..., email: _Optional[str] = ..., company_name: _Optional[str] = ..., status: _Optional[_Union[CustomerStatus, str]] = ..., subscription_tier: _Optional[_Union[SubscriptionTier, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recovery_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CreateCustomerRequest(_message.Message):
    __slots__ = ("email", "company_name", "status", "subscription_tier")
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    COMPANY_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_TIER_FIELD_NUMBER: _ClassVar[int]
    email: str
    company_name: str
    status: CustomerStatus
    subscription_tier: SubscriptionTier
    def __init__(self, email: _Optional[str] = ..., company_name: _Optional[str] = ..., status: _Optional[_Union[CustomerStatus, str]] = ..., subscription_tier: _Optional[_Union[SubscriptionTier, str]] = ...) -> None: ...

class CreateCustomerResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class GetCustomerRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class GetCustomerResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class ListCustomersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCustomersResponse(_message.Message):
    __slots__ = ("customers", "next_page_token")
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    customers: _containers.RepeatedCompositeFieldContainer[Customer]
    next_page_token: str
    def __init__(self, customers: _Optional[_Iterable[_Union[Customer, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetCustomerStatusRequest(_message.Message):
    __slots__ = ("customer_id", "status")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    status: CustomerStatus
    def __init__(self, customer_id: _Optional[str] = ..., status: _Optional[_Union[CustomerStatus, str]] = ...) -> None: ...

class SetCustomerStatusResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class SetRecoveryWindowRequest(_message.Message):
    __slots__ = ("customer_id", "recovery_window")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_WINDOW_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    recovery_window: _duration_pb2.Duration
    def __init__(self, customer_id: _Optional[str] = ..., recovery_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class SetRecoveryWindowResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class PurgeCustomerRequest(_message.Message):
    __slots__ = ("customer_id", "force")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    force: bool
    def __init__(self, customer_id: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class PurgeCustomerResponse(_message.Message):
    __slots__ = ("customer_id", "purged_at", "forced")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PURGED_AT_FIELD_NUMBER: _ClassVar[int]
    FORCED_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    purged_at: _timestamp_pb2.Timestamp
    forced: bool
    def __init__(self, customer_id: _Optional[str] = ..., purged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., forced: _Optional[bool] = ...) -> None: ...
