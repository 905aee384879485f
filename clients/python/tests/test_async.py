"""The asyncio client: the same methods as coroutines, against the real server."""

from __future__ import annotations

import asyncio

import pytest

from credvault import AsyncCredvaultClient, CredentialNotFound, InvalidArgument, RetryPolicy, VultrCredential

from conftest import GOOD_VULTR_KEY, Server


def test_the_async_client_does_what_the_sync_one_does(server: Server, customer: str) -> None:
    async def scenario() -> None:
        async with AsyncCredvaultClient(server.target, server.token, retry=RetryPolicy(deadline=10)) as vault:
            stored = await vault.store(customer, "vultr", "Async", {"api_key": GOOD_VULTR_KEY}, make_default=True)
            assert stored.is_default
            fetched = await vault.get_credential(customer, "vultr")
            assert isinstance(fetched, VultrCredential) and fetched.api_key == GOOD_VULTR_KEY
            assert GOOD_VULTR_KEY not in repr(fetched)
            rotated = await vault.rotate(stored.id, "vultr", {"api_key": "rotated"})
            assert rotated.version.version == 2
            assert (await vault.get(stored.id, version=1)).to_seed_dict() == {"api_key": GOOD_VULTR_KEY}
            for n in range(3):
                await vault.store(customer, "vultr", f"Async {n}", {"api_key": "k"})
            names = [c.name async for c in vault.list(customer, page_size=2)]
            assert names == ["Async 2", "Async 1", "Async 0", "Async"]
            assert (await vault.summary(customer)).total_credentials == 4
            assert (await vault.verify(provider="vultr", secret={"api_key": GOOD_VULTR_KEY})).is_valid
            deleted = await vault.delete(stored.id)
            assert not deleted.is_active
            assert (await vault.restore(stored.id)).is_active
            with pytest.raises(CredentialNotFound) as missing:
                await vault.get_credential(customer, "gcp")
            assert "add one in the dashboard" in missing.value.hint
            with pytest.raises(InvalidArgument) as invalid:
                await vault.store(customer, "aws", "Bad AWS", {"access_key_id": "", "secret_access_key": "s"})
            assert invalid.value.violations and invalid.value.violations[0].field.startswith("secret.aws.")

    asyncio.run(scenario())


def test_the_async_client_retries_across_a_restart(server: Server, customer: str) -> None:
    async def scenario() -> None:
        async with AsyncCredvaultClient(server.target, server.token, retry=RetryPolicy(deadline=30)) as vault:
            await vault.store(customer, "vultr", "Async restart", {"api_key": "k"})
            server.stop()
            loop = asyncio.get_running_loop()
            restart = loop.run_in_executor(None, lambda: (__import__("time").sleep(1.0), server.start()))
            fetched = await vault.get_credential(customer, "vultr")
            await restart
            assert fetched.to_seed_dict() == {"api_key": "k"}

    asyncio.run(scenario())
