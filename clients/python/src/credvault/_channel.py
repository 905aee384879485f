"""The connection settings both clients share: the token, TLS from PEM files, and reconnection
quick enough that a retried call finds a restarted server within its deadline."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from typing import Any

import grpc
import grpc.aio

from .v1 import credentials_pb2_grpc

#: Reconnect within about a second of the server coming back (gRPC's default waits up to 2 min).
CHANNEL_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


@dataclass(frozen=True)
class Tls:
    """TLS from PEM files: ``ca`` (the server's CA; the system roots when None), and for mutual
    TLS the client's ``cert`` and ``key``. ``server_name`` overrides the name checked in the
    server's certificate (when the target is an address)."""

    ca: str | Path | None = None
    cert: str | Path | None = None
    key: str | Path | None = None
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert is None) != (self.key is None):
            raise ValueError("mutual TLS needs both cert and key")
        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca), private_key=read(self.key), certificate_chain=read(self.cert)
        )

    def options(self) -> list[tuple[str, int | str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def credential_stub(channel: grpc.Channel | grpc.aio.Channel) -> Any:
    """The generated CredentialService stub (grpcio-tools writes no types for stubs)."""
    return credentials_pb2_grpc.CredentialServiceStub(channel)  # type: ignore[no-untyped-call]


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata carrying the token (``CREDVAULT_TOKEN`` when None)."""
    token = token or os.environ.get("CREDVAULT_TOKEN")
    if not token:
        raise ValueError("no token: pass token=... or set CREDVAULT_TOKEN (credvault token create prints one)")
    return (("authorization", f"Bearer {token}"),)


def read(path: str | Path | None) -> bytes | None:
    return Path(path).read_bytes() if path is not None else None
