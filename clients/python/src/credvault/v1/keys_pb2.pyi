import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyVersion(_message.Message):
    __slots__ = ("version", "state", "data_keys", "recorded_at", "customer_keys")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DATA_KEYS_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_KEYS_FIELD_NUMBER: _ClassVar[int]
    version: int
    state: str
    data_keys: int
    recorded_at: _timestamp_pb2.Timestamp
    customer_keys: int
    def __init__(self, version: _Optional[int] = ..., state: _Optional[str] = ..., data_keys: _Optional[int] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., customer_keys: _Optional[int] = ...) -> None: ...

class GetKeyStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetKeyStatusResponse(_message.Message):
    __slots__ = ("versions", "customer_keys_since", "shredded_customers")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_KEYS_SINCE_FIELD_NUMBER: _ClassVar[int]
    SHREDDED_CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[KeyVersion]
    customer_keys_since: _timestamp_pb2.Timestamp
    shredded_customers: int
    def __init__(self, versions: _Optional[_Iterable[_Union[KeyVersion, _Mapping]]] = ..., customer_keys_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., shredded_customers: _Optional[int] = ...) -> None: ...

class RotateKeyRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class RotateKeyResponse(_message.Message):
    __slots__ = ("version", "previous_version")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    previous_version: int
    def __init__(self, version: _Optional[int] = ..., previous_version: _Optional[int] = ...) -> None: ...

class EnableCustomerKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EnableCustomerKeysResponse(_message.Message):
    __slots__ = ("since",)
    SINCE_FIELD_NUMBER: _ClassVar[int]
    since: _timestamp_pb2.Timestamp
    def __init__(self, since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
