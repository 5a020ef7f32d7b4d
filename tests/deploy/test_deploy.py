"""Production deployment: settings that pass `check --deploy`, and the per-process health probes."""

import io
import os
import subprocess
import sys

import pytest
from django.core.management import call_command

from tests.support import ROOT, Stack, wait_for

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DJANGO_PRODUCTION": "1",
    "DJANGO_SECRET_KEY": "k" * 20 + "-production-secret-from-the-environment-" + "z" * 10,
    "DJANGO_ALLOWED_HOSTS": "taskhub.example.com",
    # The payment and KYC providers' secrets: production refuses the sandbox's published ones.
    "TASKHUB_DTR_API_SECRET": "dtr-api-secret-from-the-environment",
    "TASKHUB_DTR_WEBHOOK_SECRET": "dtr-webhook-secret-from-the-environment",
    "TASKHUB_ONRAMP_API_SECRET": "onramp-api-secret-from-the-environment",
}
PROVIDER_SECRETS = [
    "TASKHUB_DTR_API_SECRET",
    "TASKHUB_DTR_WEBHOOK_SECRET",
    "TASKHUB_ONRAMP_API_SECRET",
]


def manage(*argv, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *argv],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings_from_the_environment():
    done = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)

    assert done.returncode == 0, done.stderr
    assert "no issues" in done.stdout


def test_production_refuses_to_start_without_a_secret_key_from_the_environment():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SECRET_KEY"}

    done = manage("check", **env)

    assert done.returncode != 0 and "DJANGO_SECRET_KEY must be set" in done.stderr


@pytest.mark.parametrize("name", PROVIDER_SECRETS)
def test_production_refuses_to_start_with_a_provider_secret_missing(name):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != name}

    done = manage("check", **env)

    assert done.returncode != 0 and f"{name} must be set" in done.stderr


def test_production_refuses_to_start_with_the_sandboxs_published_secrets():
    from sandbox.server import Config

    sandbox = Config()
    published = {
        "TASKHUB_DTR_API_SECRET": sandbox.dtr_api_secret,
        "TASKHUB_DTR_WEBHOOK_SECRET": sandbox.dtr_webhook_secret,
        "TASKHUB_ONRAMP_API_SECRET": sandbox.onramp_api_secret,
    }

    done = manage("check", **{**PRODUCTION_ENV, **published})

    assert done.returncode != 0
    assert all(name in done.stderr for name in PROVIDER_SECRETS)
    assert not any(value in done.stderr for value in published.values())  # never echoed


def test_the_env_example_lists_every_secret_production_requires():
    example = (ROOT / "deploy" / "systemd" / "taskhub.env.example").read_text()

    assert all(f"\n{name}=" in example for name in ["DJANGO_SECRET_KEY", *PROVIDER_SECRETS])


def test_the_embedded_default_still_runs_with_no_environment():
    done = manage("check")

    assert done.returncode == 0, done.stderr


def probe(*flags):
    out = io.StringIO()
    try:
        call_command("taskhub", "health", *flags, stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code


@pytest.mark.e2e
def test_worker_and_dispatcher_probes_follow_the_processes(transactional_db):
    from taskhub.engine.broker import get_redis
    from taskhub.engine.dispatcher import dispatcher_alive_key
    from taskhub.engine.leadership import standby_key

    # An earlier module's dispatcher candidates, now stopped.
    get_redis().delete(dispatcher_alive_key(), standby_key())
    assert probe("--worker") == 1 and probe("--dispatcher") == 1
    stack = Stack(processes=1, threads=2).start()
    try:
        wait_for(lambda: probe("--worker", "--dispatcher") == 0, timeout=20, message="healthy")
        assert probe() == 0
    finally:
        stack.stop()
