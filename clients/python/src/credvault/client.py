"""The synchronous client (the seed's Celery worker's)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar, cast

import grpc

from . import _plans
from ._channel import CHANNEL_OPTIONS, Tls, bearer, credential_stub
from ._plans import RETRYABLE, Plan, RetryPolicy
from .errors import error_from
from .models import Credential, CredentialInfo, Rotated, Summary, Verification

T = TypeVar("T")


class CredvaultClient:
    """A connection to credvault's gRPC API.

    >>> with CredvaultClient("credvault.internal:50051", tls=Tls(ca="ca.pem")) as vault:
    ...     key = vault.get_credential(customer_id, "vultr").api_key
    """

    def __init__(
        self, target: str, token: str | None = None, tls: Tls | None = None, *, retry: RetryPolicy | None = None
    ) -> None:
        self._metadata = bearer(token)
        self._retry = retry or RetryPolicy()
        if tls is None:
            self._channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        else:
            self._channel = grpc.secure_channel(target, tls.credentials(), options=CHANNEL_OPTIONS + tls.options())
        self._stub = credential_stub(self._channel)
        self.target = target

    def __repr__(self) -> str:
        return f"CredvaultClient({self.target!r})"

    def __enter__(self) -> CredvaultClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _run(self, plan: Plan[T]) -> T:
        method = getattr(self._stub, plan.rpc)
        deadline = time.monotonic() + self._retry.deadline
        pauses = self._retry.backoffs()
        while True:
            remaining = deadline - time.monotonic()
            try:
                response: Any = method(plan.request, timeout=max(remaining, 0.001), metadata=self._metadata)
                return plan.answer(response)
            except grpc.RpcError as failure:
                call = cast(grpc.Call, failure)
                code = call.code()
                if plan.retry and code in RETRYABLE:
                    pause = next(pauses)
                    if time.monotonic() + pause < deadline:
                        time.sleep(pause)
                        continue
                raise error_from(code, call.details() or "", call.trailing_metadata()) from None

    def get_credential(self, customer_id: str, provider: str) -> Credential:
        """The customer's preferred active credential of ``provider`` (the default, else the
        newest verified, else the newest), with its secret. Each call is a use on record."""
        return self._run(_plans.get_credential(customer_id, provider))

    def get(self, credential_id: str, version: int | None = None) -> Credential:
        """A credential by id, at ``version`` (the current one when None)."""
        return self._run(_plans.get(credential_id, version))

    def store(
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
        """Stores a credential; ``secret`` takes the seed's fields (``{"api_key": ...}``, ...).
        A random idempotency key is sent when none is given, so a retried Store is safe. With
        ``verify``, the provider checks the secret once stored (never failing the Store): the
        answer's ``verification_state``, ``identity`` and ``findings`` say how it went."""
        return self._run(
            _plans.store(
                customer_id, provider, name, secret, permissions=permissions, credential_type=credential_type,
                make_default=make_default, idempotency_key=idempotency_key, verify=verify,
            )
        )

    def rotate(
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
        """A new version of the credential with a new secret; it becomes current."""
        return self._run(
            _plans.rotate(credential_id, provider, secret, disable_previous=disable_previous, etag=etag,
                          idempotency_key=idempotency_key, verify=verify)
        )

    def list(
        self, customer_id: str, provider: str | None = None, *, include_inactive: bool = False, page_size: int = 100
    ) -> Iterator[CredentialInfo]:
        """Every credential's metadata, newest first, fetched a page at a time as it is iterated."""
        token = ""
        while True:
            items, token = self._run(_plans.list_page(customer_id, provider, include_inactive, page_size, token))
            yield from items
            if not token:
                return

    def summary(self, customer_id: str) -> Summary:
        return self._run(_plans.summary(customer_id))

    def delete(self, credential_id: str) -> CredentialInfo:
        """Soft-deletes; it can be restored within the customer's recovery window."""
        return self._run(_plans.delete(credential_id))

    def restore(self, credential_id: str) -> CredentialInfo:
        return self._run(_plans.restore(credential_id))

    def verify(
        self, credential_id: str | None = None, *, provider: str | None = None, secret: Mapping[str, str] | None = None
    ) -> Verification:
        """Checks a stored credential, or a secret inline (nothing stored), against its provider."""
        return self._run(_plans.verify(credential_id, provider, secret))
