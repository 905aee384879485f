"""Every method of the synchronous client against the real server, each error class from a
real answer, the reprs, and the seed adapter's dict shapes."""

from __future__ import annotations

import json
import threading
import time

import grpc
import pytest

from credvault import (
    AwsCredential,
    AzureCredential,
    Conflict,
    CredentialNotFound,
    CredvaultClient,
    CredvaultError,
    FailedPrecondition,
    GcpCredential,
    InvalidArgument,
    PermissionDenied,
    RetryPolicy,
    Unauthenticated,
    Unavailable,
    VultrCredential,
)
from credvault.seed import CredentialManager

from conftest import GOOD_VULTR_KEY, Server

GCP_KEY = json.dumps({
    "type": "service_account",
    "project_id": "analytics",
    "client_email": "collector@analytics.iam.gserviceaccount.com",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
    "token_uri": "https://oauth2.googleapis.com/token",
})
SECRETS = {
    "vultr": {"api_key": "VULTR-SECRET-AAAA"},
    "aws": {"access_key_id": "AKIAEXAMPLE0000001", "secret_access_key": "aws/secret/BBBB", "session_token": "SESSION-CCCC"},
    "gcp": {"service_account_json": GCP_KEY},
    "azure": {"tenant_id": "tenant-1", "client_id": "client-1", "client_secret": "AZURE-SECRET-DDDD", "subscription_id": "sub-1"},
}
SECRET_VALUES = ["VULTR-SECRET-AAAA", "aws/secret/BBBB", "SESSION-CCCC", "PRIVATE KEY", "AZURE-SECRET-DDDD"]


@pytest.fixture()
def vault(server: Server) -> CredvaultClient:
    with CredvaultClient(server.target, server.token) as client:
        yield client


def test_each_provider_round_trips_as_its_type_and_no_repr_shows_a_secret(vault: CredvaultClient, customer: str) -> None:
    types = {"vultr": VultrCredential, "aws": AwsCredential, "gcp": GcpCredential, "azure": AzureCredential}
    for provider, secret in SECRETS.items():
        stored = vault.store(customer, provider, f"Production {provider}", secret, permissions="read_write")
        assert (stored.provider, stored.name, stored.permissions, stored.is_active) == (provider, f"Production {provider}", "read_write", True)
        fetched = vault.get_credential(customer, provider)
        assert type(fetched) is types[provider]
        assert fetched.to_seed_dict() == secret, "every field, exactly as stored"
        assert (fetched.id, fetched.version, fetched.info.usage_count) == (stored.id, 1, 1)
        for shown in (repr(fetched), str(fetched), repr(stored)):
            assert not any(value in shown for value in SECRET_VALUES), shown
    aws = vault.get_credential(customer, "aws")
    assert isinstance(aws, AwsCredential) and "AKIAEXAMPLE0000001" in repr(aws), "the key id is not a secret"


def test_rotation_versions_get_by_id_and_version(vault: CredvaultClient, customer: str) -> None:
    stored = vault.store(customer, "vultr", "Rotated", {"api_key": "first-key"})
    rotated = vault.rotate(stored.id, "vultr", {"api_key": "second-key"}, etag=stored.etag)
    assert (rotated.version.version, rotated.version.state, rotated.credential.current_version) == (2, "enabled", 2)
    current = vault.get(stored.id)
    assert isinstance(current, VultrCredential) and (current.api_key, current.version) == ("second-key", 2)
    first = vault.get(stored.id, version=1)
    assert isinstance(first, VultrCredential) and first.api_key == "first-key"
    with pytest.raises(Conflict):
        vault.rotate(stored.id, "vultr", {"api_key": "third"}, etag=stored.etag)


def test_list_pages_lazily_and_summary_counts(vault: CredvaultClient, customer: str) -> None:
    for n in range(5):
        vault.store(customer, "vultr", f"Key {n}", {"api_key": f"k{n}"})
    listed = vault.list(customer, page_size=2)
    first = next(listed)
    assert first.name == "Key 4", "newest first"
    assert [c.name for c in listed] == ["Key 3", "Key 2", "Key 1", "Key 0"]
    assert [c.name for c in vault.list(customer, "aws")] == []
    summary = vault.summary(customer)
    assert summary.total_credentials == 5
    assert (summary.providers["vultr"].total, summary.providers["vultr"].active) == (5, 5)


def test_delete_and_restore(vault: CredvaultClient, customer: str) -> None:
    stored = vault.store(customer, "vultr", "Deleted", {"api_key": "k"})
    deleted = vault.delete(stored.id)
    assert not deleted.is_active and deleted.scheduled_purge_at is not None
    with pytest.raises(CredentialNotFound):
        vault.get(stored.id)
    assert [c.id for c in vault.list(customer, include_inactive=True)] == [stored.id]
    restored = vault.restore(stored.id)
    assert restored.is_active and vault.get(stored.id).to_seed_dict() == {"api_key": "k"}
    with pytest.raises(FailedPrecondition):
        vault.restore(stored.id)


def test_verify_inline_and_stored_against_the_provider(vault: CredvaultClient, customer: str) -> None:
    good = vault.verify(provider="vultr", secret={"api_key": GOOD_VULTR_KEY})
    assert good.is_valid and good.credential is None and good.identity
    bad = vault.verify(provider="vultr", secret={"api_key": "WRONG"})
    assert bad.outcome == "invalid" and not bad.is_valid
    stored = vault.store(customer, "vultr", "Verified", {"api_key": GOOD_VULTR_KEY})
    verified = vault.verify(stored.id)
    assert verified.is_valid and verified.credential is not None and verified.credential.is_verified
    with pytest.raises(ValueError):
        vault.verify()


def test_store_and_rotate_verify_when_asked(vault: CredvaultClient, customer: str) -> None:
    unasked = vault.store(customer, "vultr", "Unasked", {"api_key": GOOD_VULTR_KEY})
    assert unasked.verification_state == "unverified" and unasked.identity == {}
    stored = vault.store(customer, "vultr", "Checked on write", {"api_key": GOOD_VULTR_KEY}, verify=True)
    assert stored.verification_state == "verified" and stored.is_verified
    assert stored.identity["account_email"] == "ops@acme.test"
    rotated = vault.rotate(stored.id, "vultr", {"api_key": "WRONG"}, verify=True)
    assert rotated.credential.verification_state == "invalid" and rotated.credential.consecutive_failures == 1
    assert rotated.credential.identity == {}, "the identity was the old secret's"


def test_each_error_class_comes_from_a_real_answer(server: Server, vault: CredvaultClient, customer: str) -> None:
    with pytest.raises(CredentialNotFound) as missing:
        vault.get_credential(customer, "azure")
    assert "add one in the dashboard" in missing.value.hint
    with pytest.raises(InvalidArgument) as invalid:
        vault.store(customer, "gcp", "Bad GCP", {"service_account_json": "{not json"})
    assert [v.field for v in invalid.value.violations] == ["secret.gcp.service_account_json"]
    assert "{not json" not in str(invalid.value), "the secret is not echoed"
    vault.store(customer, "vultr", "Taken", {"api_key": "k"})
    with pytest.raises(Conflict):
        vault.store(customer, "vultr", "Taken", {"api_key": "k2"})
    reader = server.cli("token", "create", "--name", f"reader-{time.time_ns()}", "--scopes", "credentials:read", "--customer", "*")
    with CredvaultClient(server.target, reader) as limited, pytest.raises(PermissionDenied):
        limited.get_credential(customer, "vultr")
    with CredvaultClient(server.target, "cvt_not-a-token") as stranger, pytest.raises(Unauthenticated):
        stranger.summary(customer)
    with pytest.raises(ValueError):
        vault.store(customer, "vultr", "Unknown field", {"api_key": "k", "password": "x"})
    assert issubclass(Unavailable, CredvaultError) and issubclass(CredentialNotFound, CredvaultError)


def test_an_unreachable_server_is_unavailable_within_the_deadline(server: Server) -> None:
    nowhere = f"127.0.0.1:{server.http_port + 1 if server.http_port < 65535 else 1}"
    started = time.monotonic()
    with CredvaultClient(nowhere, server.token, retry=RetryPolicy(deadline=1.0)) as client, pytest.raises(Unavailable) as error:
        client.summary("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    assert error.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert time.monotonic() - started < 5


def test_calls_retry_across_a_server_restart_and_a_retried_store_stores_once(server: Server, customer: str) -> None:
    with CredvaultClient(server.target, server.token, retry=RetryPolicy(deadline=30.0)) as vault:
        vault.store(customer, "vultr", "Before", {"api_key": "before-key"})
        server.stop()
        restart = threading.Timer(1.0, server.start)
        restart.start()
        try:
            fetched = vault.get_credential(customer, "vultr")
            assert fetched.to_seed_dict() == {"api_key": "before-key"}
        finally:
            restart.join()
        server.stop()
        restart = threading.Timer(1.0, server.start)
        restart.start()
        try:
            stored = vault.store(customer, "vultr", "Across a restart", {"api_key": "k"}, idempotency_key="restart-1")
        finally:
            restart.join()
        again = vault.store(customer, "vultr", "Across a restart", {"api_key": "k"}, idempotency_key="restart-1")
        assert again.id == stored.id
        assert [c.name for c in vault.list(customer)].count("Across a restart") == 1


def test_writes_without_an_idempotency_key_are_not_retried(server: Server, customer: str) -> None:
    with CredvaultClient(server.target, server.token, retry=RetryPolicy(deadline=30.0)) as vault:
        stored = vault.store(customer, "vultr", "Not retried", {"api_key": "k"})
        server.stop()
        try:
            started = time.monotonic()
            with pytest.raises(Unavailable):
                vault.delete(stored.id)
            assert time.monotonic() - started < 5, "a Delete is not retried until the deadline"
        finally:
            server.start()


def test_the_seed_adapter_returns_the_seeds_dict_shapes(server: Server, customer: str) -> None:
    manager = CredentialManager(server.target, server.token)
    try:
        assert manager.get_credential(customer, "vultr") is None, "none stored: the seed's None"
        with CredvaultClient(server.target, server.token) as vault:
            for provider, secret in SECRETS.items():
                vault.store(customer, provider, f"Seed {provider}", secret)
        for provider, secret in SECRETS.items():
            assert manager.get_credential(customer, provider) == secret
        assert manager.get_credential(customer, "aws") == {
            "access_key_id": "AKIAEXAMPLE0000001",
            "secret_access_key": "aws/secret/BBBB",
            "session_token": "SESSION-CCCC",
        }
    finally:
        manager.close()


def test_the_token_defaults_to_the_environment(server: Server, customer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDVAULT_TOKEN", server.token)
    with CredvaultClient(server.target) as vault:
        assert vault.summary(customer).total_credentials == 0
        assert server.token not in repr(vault)
    monkeypatch.delenv("CREDVAULT_TOKEN")
    with pytest.raises(ValueError, match="CREDVAULT_TOKEN"):
        CredvaultClient(server.target)
