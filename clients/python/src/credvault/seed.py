"""A drop-in for the seed's ``CredentialManager`` in the data collector: the worker changes one
import and keeps calling ``credential_manager.get_credential(customer_id, "vultr")``.

    from credvault.seed import CredentialManager
    credential_manager = CredentialManager("credvault.internal:50051")   # token: CREDVAULT_TOKEN
"""

from __future__ import annotations

from .client import CredvaultClient
from .errors import CredentialNotFound


class CredentialManager:
    """``get_credential(customer_id, provider)`` returns the seed's dict (``{"api_key": ...}``,
    ``{"access_key_id": ..., "secret_access_key": ...}``, ...), or None when the customer has no
    active credential of that provider (the worker then asks them to add one in the dashboard).
    Other failures raise :class:`credvault.CredvaultError`."""

    def __init__(self, target: str | None = None, token: str | None = None, *, client: CredvaultClient | None = None):
        if client is None:
            if target is None:
                raise ValueError("give the credvault address (host:port) or a CredvaultClient")
            client = CredvaultClient(target, token)
        self._client = client

    def get_credential(self, customer_id: str, provider: str) -> dict[str, str] | None:
        try:
            return self._client.get_credential(customer_id, provider).to_seed_dict()
        except CredentialNotFound:
            return None

    def close(self) -> None:
        self._client.close()
