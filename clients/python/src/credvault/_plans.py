"""Each client method as a plan: which RPC, the request, whether a retry is safe, and how the
answer becomes the client's value. The sync and asyncio clients run the same plans, so they
cannot drift apart; only how they wait differs."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc

from . import _convert
from .models import Credential, CredentialInfo, Rotated, Summary, Verification
from .v1 import credentials_pb2 as pb

T = TypeVar("T")

#: Codes after which the same request may be sent again.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass(frozen=True)
class RetryPolicy:
    """How long one call may take in all (``deadline``, seconds, retries included) and how it
    waits between attempts: exponential backoff from ``initial_backoff`` up to ``max_backoff``,
    each wait drawn at random below it ("full jitter"), so that many workers retrying at once
    do not arrive together. Only UNAVAILABLE and DEADLINE_EXCEEDED are retried, and a write only
    when it carries an idempotency key."""

    deadline: float = 10.0
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0

    def backoffs(self) -> Iterator[float]:
        ceiling = self.initial_backoff
        while True:
            yield random.uniform(0, ceiling)
            ceiling = min(ceiling * self.multiplier, self.max_backoff)


@dataclass(frozen=True)
class Plan(Generic[T]):
    rpc: str
    request: Any
    retry: bool
    answer: Callable[[Any], T]


def get_credential(customer_id: str, provider: str) -> Plan[Credential]:
    request = pb.GetRequest(
        by_provider=pb.ProviderSelector(customer_id=customer_id, provider=_convert.provider_enum(provider))
    )
    return Plan("Get", request, True, _convert.fetched)


def get(credential_id: str, version: int | None) -> Plan[Credential]:
    return Plan("Get", pb.GetRequest(credential_id=credential_id, version=version or 0), True, _convert.fetched)


def store(
    customer_id: str,
    provider: str,
    name: str,
    secret: Mapping[str, str],
    *,
    permissions: str,
    credential_type: str | None,
    make_default: bool,
    idempotency_key: str | None,
    verify: bool = False,
) -> Plan[CredentialInfo]:
    request = pb.StoreRequest(
        customer_id=customer_id,
        credential_name=name,
        credential_type=credential_type or "",
        permissions=_convert.permission_enum(permissions),
        secret=_convert.secret(provider, secret),
        # A key by default: a Store retried after a lost answer is answered, not repeated.
        idempotency_key=idempotency_key or str(uuid.uuid4()),
        make_default=make_default,
        verify=verify,
    )
    return Plan("Store", request, True, lambda r: _convert.info(r.credential))


def rotate(
    credential_id: str,
    provider: str,
    secret: Mapping[str, str],
    *,
    disable_previous: bool,
    etag: str | None,
    idempotency_key: str | None,
    verify: bool = False,
) -> Plan[Rotated]:
    request = pb.AddVersionRequest(
        credential_id=credential_id,
        secret=_convert.secret(provider, secret),
        disable_previous=disable_previous,
        etag=etag or "",
        idempotency_key=idempotency_key or str(uuid.uuid4()),
        verify=verify,
    )
    return Plan("AddVersion", request, True, _convert.rotated)


def list_page(
    customer_id: str, provider: str | None, include_inactive: bool, page_size: int, page_token: str
) -> Plan[tuple[list[CredentialInfo], str]]:
    request = pb.ListRequest(
        customer_id=customer_id,
        provider=_convert.provider_enum(provider) if provider else pb.PROVIDER_UNSPECIFIED,
        include_inactive=include_inactive,
        page_size=page_size,
        page_token=page_token,
    )
    return Plan("List", request, True, lambda r: ([_convert.info(c) for c in r.credentials], r.next_page_token))


def summary(customer_id: str) -> Plan[Summary]:
    return Plan("Summary", pb.SummaryRequest(customer_id=customer_id), True, _convert.summary)


def delete(credential_id: str) -> Plan[CredentialInfo]:
    # Not retried: a second Delete would answer NOT_FOUND for what the first one did.
    return Plan("Delete", pb.DeleteRequest(credential_id=credential_id), False, lambda r: _convert.info(r.credential))


def restore(credential_id: str) -> Plan[CredentialInfo]:
    request = pb.RestoreCredentialRequest(credential_id=credential_id)
    return Plan("RestoreCredential", request, False, lambda r: _convert.info(r.credential))


def verify(
    credential_id: str | None, provider: str | None, secret: Mapping[str, str] | None
) -> Plan[Verification]:
    if credential_id is not None and secret is None:
        request = pb.VerifyRequest(credential_id=credential_id)
    elif credential_id is None and provider is not None and secret is not None:
        request = pb.VerifyRequest(secret=_convert.secret(provider, secret))
    else:
        raise ValueError("verify takes a credential_id, or a provider and a secret (not both)")
    return Plan("Verify", request, True, _convert.verification)
