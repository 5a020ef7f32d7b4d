"""Real local servers for the payments tests: the provider sandbox, anvil with a Safe, the
taskhub web server (for callbacks), and worker + dispatcher processes."""

from __future__ import annotations

import pytest
from django.conf import settings

from payments.chain import devchain
from tests.sandbox_support import start_sandbox
from tests.support import ROOT, Stack


@pytest.fixture(scope="session")
def chain():
    """anvil with a funded 2-of-3 Safe (user, server, backup owners)."""
    try:
        running = devchain.start()
    except devchain.AnvilMissing as exc:
        pytest.skip(str(exc))
    running.safe_address = devchain.deploy_safe(running)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def sandbox(chain):
    (ROOT / "var" / "test-logs").mkdir(parents=True, exist_ok=True)
    proc, url = start_sandbox({"SANDBOX_CHAIN_RPC_URL": chain.url})
    yield url
    proc.kill()
    proc.wait()


@pytest.fixture(scope="session")
def provider_settings(sandbox, chain, live_server):
    """Point this process and the processes it starts at the sandbox, anvil and live_server."""
    values = {
        "DTR_BASE_URL": f"{sandbox}/dtr",
        "CALLBACK_BASE_URL": live_server.url,
        "CHAIN_RPC_URL": chain.url,
        "CHAIN_ID": chain.chain_id,
        "SAFE_SERVER_KEY": chain.server_key,
        "SAFE_RELAYER_KEY": chain.relayer_key,
        "SAFE_TX_SERVICE_URL": f"{sandbox}/safe-tx-service",
    }
    env = {
        "TASKHUB_DTR_BASE_URL": values["DTR_BASE_URL"],
        "TASKHUB_PUBLIC_URL": live_server.url,
        "TASKHUB_CHAIN_RPC_URL": chain.url,
        "TASKHUB_CHAIN_ID": str(chain.chain_id),
        "TASKHUB_SAFE_SERVER_KEY": chain.server_key,
        "TASKHUB_SAFE_RELAYER_KEY": chain.relayer_key,
        "TASKHUB_SAFE_TX_SERVICE_URL": values["SAFE_TX_SERVICE_URL"],
        "TASKHUB_ONRAMP_BASE_URL": f"{sandbox}/onramp",
    }
    saved = dict(settings.PAYMENTS), dict(settings.KYC)
    settings.PAYMENTS.update(values)
    settings.KYC.update(
        {
            "DTR_BASE_URL": values["DTR_BASE_URL"],
            "CALLBACK_BASE_URL": live_server.url,
            "ONRAMP_BASE_URL": f"{sandbox}/onramp",
        }
    )
    yield env
    settings.PAYMENTS.clear()
    settings.PAYMENTS.update(saved[0])
    settings.KYC.clear()
    settings.KYC.update(saved[1])


@pytest.fixture(scope="module")
def stack_env(provider_settings):
    """The environment of the stack's processes; a module may override it (e.g. to put a
    proxy between the workers and the chain)."""
    return provider_settings


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, stack_env):
    running = Stack(processes=1, threads=4, env=stack_env)
    with django_db_blocker.unblock():
        try:
            running.start()
        except BaseException:
            running.stop()  # never leave processes behind on the test database
            raise
    yield running
    running.stop()


@pytest.fixture
def e2e(stack, transactional_db):
    return stack
