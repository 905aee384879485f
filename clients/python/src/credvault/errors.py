"""The errors a credvault call raises, one class per thing a caller handles differently, all
under :class:`CredvaultError`. Built from the server's status and its ``google.rpc`` details."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2


@dataclass(frozen=True)
class FieldViolation:
    """One field the server refused, and why (from ``google.rpc.BadRequest``)."""

    field: str
    description: str


class CredvaultError(Exception):
    """A call credvault refused or could not answer. ``code`` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} ({self.code.name})"


class CredentialNotFound(CredvaultError):
    """No such credential (or customer) for this caller. ``hint`` is the server's advice, e.g.
    "no active vultr credential for customer ...; add one in the dashboard"."""

    @property
    def hint(self) -> str:
        return self.message


class InvalidArgument(CredvaultError):
    """A field of the request was refused; ``violations`` names each one."""

    def __init__(self, code: grpc.StatusCode, message: str, violations: Sequence[FieldViolation]) -> None:
        super().__init__(code, message)
        self.violations = list(violations)


class PermissionDenied(CredvaultError):
    """The token lacks the scope, or is bound to another customer."""


class Unauthenticated(CredvaultError):
    """No token, or a token that is unknown, revoked or expired."""


class Conflict(CredvaultError):
    """The name is taken (ALREADY_EXISTS), or the credential changed since its etag was read
    (ABORTED): read again and retry."""


class FailedPrecondition(CredvaultError):
    """Not possible in the current state (a suspended customer, a destroyed version, ...)."""


class Unavailable(CredvaultError):
    """The server or its database could not answer within the call's deadline (after retries)."""


_CLASSES: dict[grpc.StatusCode, type[CredvaultError]] = {
    grpc.StatusCode.NOT_FOUND: CredentialNotFound,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.ALREADY_EXISTS: Conflict,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}


def error_from(
    code: grpc.StatusCode, message: str, trailing: Sequence[tuple[str, str | bytes]] | None
) -> CredvaultError:
    """The error for a failed call: its code, message and (for INVALID_ARGUMENT) the field
    violations carried in the ``grpc-status-details-bin`` trailer."""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(code, message, _violations(trailing or ()))
    return _CLASSES.get(code, CredvaultError)(code, message)


def _violations(trailing: Sequence[tuple[str, str | bytes]]) -> list[FieldViolation]:
    found: list[FieldViolation] = []
    for key, value in trailing:
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                found.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
    return found
