"""The asyncio client (grpc.aio): the same methods as :class:`credvault.CredvaultClient`, as
coroutines; ``list`` is an async iterator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import grpc
from grpc import aio

from . import _plans
from ._channel import CHANNEL_OPTIONS, Tls, bearer, credential_stub
from ._plans import RETRYABLE, Plan, RetryPolicy
from .errors import error_from
from .models import Credential, CredentialInfo, Rotated, Summary, Verification

T = TypeVar("T")


class AsyncCredvaultClient:
    """A connection to credvault's gRPC API for asyncio code.

    >>> async with AsyncCredvaultClient("credvault.internal:50051") as vault:
    ...     key = (await vault.get_credential(customer_id, "vultr")).api_key
    """

    def __init__(
        self, target: str, token: str | None = None, tls: Tls | None = None, *, retry: RetryPolicy | None = None
    ) -> None:
        self._metadata = bearer(token)
        self._retry = retry or RetryPolicy()
        if tls is None:
            self._channel = aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        else:
            self._channel = aio.secure_channel(target, tls.credentials(), options=CHANNEL_OPTIONS + tls.options())
        self._stub = credential_stub(self._channel)
        self.target = target

    def __repr__(self) -> str:
        return f"AsyncCredvaultClient({self.target!r})"

    async def __aenter__(self) -> AsyncCredvaultClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _run(self, plan: Plan[T]) -> T:
        method = getattr(self._stub, plan.rpc)
        deadline = time.monotonic() + self._retry.deadline
        pauses = self._retry.backoffs()
        while True:
            remaining = deadline - time.monotonic()
            try:
                response: Any = await method(plan.request, timeout=max(remaining, 0.001), metadata=self._metadata)
                return plan.answer(response)
            except aio.AioRpcError as failure:
                code = failure.code()
                if plan.retry and code in RETRYABLE:
                    pause = next(pauses)
                    if time.monotonic() + pause < deadline:
                        await asyncio.sleep(pause)
                        continue
                trailing = list(failure.trailing_metadata() or ())
                raise error_from(code, failure.details() or "", trailing) from None

    async def get_credential(self, customer_id: str, provider: str) -> Credential:
        return await self._run(_plans.get_credential(customer_id, provider))

    async def get(self, credential_id: str, version: int | None = None) -> Credential:
        return await self._run(_plans.get(credential_id, version))

    async def store(
        self,
        customer_id: str,
        provider: str,
        name: str,
        secret: Mapping[str, str],
        *,
        permissions: str = "read_only",
        credential_type: str | None = None,
        make_default: bool = False,
        idempotency_key: str | None = None,
        verify: bool = False,
    ) -> CredentialInfo:
        return await self._run(
            _plans.store(
                customer_id, provider, name, secret, permissions=permissions, credential_type=credential_type,
                make_default=make_default, idempotency_key=idempotency_key, verify=verify,
            )
        )

    async def rotate(
        self,
        credential_id: str,
        provider: str,
        secret: Mapping[str, str],
        *,
        disable_previous: bool = False,
        etag: str | None = None,
        idempotency_key: str | None = None,
        verify: bool = False,
    ) -> Rotated:
        return await self._run(
            _plans.rotate(credential_id, provider, secret, disable_previous=disable_previous, etag=etag,
                          idempotency_key=idempotency_key, verify=verify)
        )

    async def list(
        self, customer_id: str, provider: str | None = None, *, include_inactive: bool = False, page_size: int = 100
    ) -> AsyncIterator[CredentialInfo]:
        token = ""
        while True:
            items, token = await self._run(_plans.list_page(customer_id, provider, include_inactive, page_size, token))
            for item in items:
                yield item
            if not token:
                return

    async def summary(self, customer_id: str) -> Summary:
        return await self._run(_plans.summary(customer_id))

    async def delete(self, credential_id: str) -> CredentialInfo:
        return await self._run(_plans.delete(credential_id))

    async def restore(self, credential_id: str) -> CredentialInfo:
        return await self._run(_plans.restore(credential_id))

    async def verify(
        self, credential_id: str | None = None, *, provider: str | None = None, secret: Mapping[str, str] | None = None
    ) -> Verification:
        return await self._run(_plans.verify(credential_id, provider, secret))


__all__ = ["AsyncCredvaultClient"]
