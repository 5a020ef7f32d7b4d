"""Where taskhub finds its broker and Redis (taskhub.engine.broker, taskhub.engine.embedded), the
broker it configures when the project does not, and the system checks of taskhub.engine.checks:
each check is shown quiet on this project's settings and firing on the misconfiguration it names.
"""

from __future__ import annotations

import copy
import os
import re
import runpy
from pathlib import Path

import dramatiq
import dramatiq.brokers.stub
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from taskhub.conf import DEFAULT_DRAMATIQ_BROKER, DEFAULTS, SQLITE_OPTIONS, check_namespaces
from taskhub.engine import broker as broker_module
from taskhub.engine import checks as checks_module
from taskhub.engine import embedded
from taskhub.engine.broker import (
    broker_url,
    build_broker,
    configured_redis_url,
    install_default_broker,
    redis_url,
    uses_embedded_redis,
)
from taskhub.engine.checks import check_broker, check_sqlite, check_task_settings
from taskhub.engine.redis_transport import TaskhubRedisBroker
from tests.support import ROOT, override_taskhub

TRACKING = "taskhub.engine.middleware.TaskTrackingMiddleware"
PROJECT_SETTINGS = ROOT / "config" / "settings.py"
TIME_LIMIT = "dramatiq.middleware.TimeLimit"


def _ids(messages) -> list[str]:
    return sorted(m.id for m in messages)


def _project_broker(**config) -> dict:
    return {"BROKER": broker_module.BROKER_FACTORY, "MIDDLEWARE": [TIME_LIMIT, TRACKING], **config}


@pytest.fixture
def no_redis_env(monkeypatch):
    """Neither the environment nor the project's TASKHUB names a Redis or a broker."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    user = {k: v for k, v in settings.TASKHUB.items() if k not in ("REDIS_URL", "BROKER_URL")}
    with override_settings(TASKHUB=user):
        yield


# -- where the Redis and the broker are ----------------------------------------------------------


def test_taskhub_redis_url_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://from-env:6379/1")
    with override_taskhub(REDIS_URL="redis://from-settings:6379/2"):
        assert redis_url() == "redis://from-settings:6379/2"
        assert not uses_embedded_redis()


def test_the_environment_names_the_redis_when_the_settings_do_not(no_redis_env, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://from-env:6379/1")
    assert configured_redis_url() == "redis://from-env:6379/1"


def test_a_redis_broker_url_is_the_redis_when_nothing_else_names_one(no_redis_env):
    with override_settings(DRAMATIQ_BROKER=_project_broker(OPTIONS={"url": "redis://b:6379/3"})):
        assert redis_url() == "redis://b:6379/3"
        assert broker_url() == "redis://b:6379/3"
    with override_taskhub(BROKER_URL="amqp://guest@rabbit/"):
        # RabbitMQ carries messages only: coordination still needs a Redis.
        assert configured_redis_url() == ""
        assert broker_url() == "amqp://guest@rabbit/"


def test_dramatiq_options_url_names_the_broker(no_redis_env, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://coordination:6379/0")
    with override_settings(
        DRAMATIQ_BROKER=_project_broker(OPTIONS={"url": "amqp://guest@rabbit/"})
    ):
        assert broker_url() == "amqp://guest@rabbit/"
        assert redis_url() == "redis://coordination:6379/0"
    assert broker_url() == "redis://coordination:6379/0"


def test_the_embedded_redis_when_nothing_names_one(no_redis_env, tmp_path):
    with override_taskhub(VAR_DIR=tmp_path):
        assert uses_embedded_redis()
        assert redis_url() == f"unix://{tmp_path / 'redis.sock'}"


def test_no_redis_and_no_embedded_server_is_a_clear_error(no_redis_env, monkeypatch):
    monkeypatch.setattr(embedded, "available", lambda: False)
    monkeypatch.setattr(broker_module, "_resolved_redis_url", None)
    with pytest.raises(ImproperlyConfigured) as error:
        redis_url()
    assert "django-taskhub[embedded]" in str(error.value)
    assert "TASKHUB['REDIS_URL']" in str(error.value)


def test_var_dir_defaults_to_var_beside_the_project_or_in_the_working_directory(
    settings, tmp_path, monkeypatch
):
    settings.TASKHUB = {k: v for k, v in settings.TASKHUB.items() if k != "VAR_DIR"}
    settings.BASE_DIR = tmp_path / "project"
    assert embedded.var_dir() == tmp_path / "project" / "var"
    del settings.BASE_DIR
    monkeypatch.chdir(tmp_path)
    assert embedded.var_dir() == tmp_path / "var"
    settings.TASKHUB = {**settings.TASKHUB, "VAR_DIR": str(tmp_path / "elsewhere")}
    assert embedded.socket_path() == tmp_path / "elsewhere" / "redis.sock"


# -- the broker taskhub configures -------------------------------------------------------------


@pytest.mark.skipif(
    os.environ.get("TASKHUB_TEST_DUPLICATE_MESSAGES") == "1",
    reason="the duplication drill sets a DRAMATIQ_BROKER of its own",
)
def test_this_project_runs_on_the_broker_taskhub_configured():
    # config/settings.py sets no DRAMATIQ_BROKER: taskhub.apps put its own in.
    assert settings.DRAMATIQ_BROKER is DEFAULT_DRAMATIQ_BROKER
    current = dramatiq.get_broker()
    assert getattr(current, "built_by_taskhub", False)
    assert type(current).__name__ in ("TaskhubRedisBroker", "RabbitmqBroker")
    names = {type(m).__name__ for m in current.middleware}
    assert {"TaskTrackingMiddleware", "TimeLimit"} <= names


def test_dramatiq_options_url_reaches_the_factory():
    built = build_broker(url="redis://127.0.0.1:6379/15")
    assert isinstance(built, TaskhubRedisBroker) and built.built_by_taskhub


def test_a_broker_django_dramatiq_built_by_default_is_replaced(monkeypatch):
    # As when django_dramatiq is listed before taskhub: its RabbitMQ default is in place.
    monkeypatch.setattr(dramatiq.broker, "global_broker", dramatiq.brokers.stub.StubBroker())
    install_default_broker()
    assert getattr(dramatiq.broker.global_broker, "built_by_taskhub", False)


def test_a_project_broker_is_left_alone(monkeypatch):
    stub = dramatiq.brokers.stub.StubBroker()
    monkeypatch.setattr(dramatiq.broker, "global_broker", stub)
    with override_settings(DRAMATIQ_BROKER=_project_broker(OPTIONS={})):
        install_default_broker()
    assert dramatiq.broker.global_broker is stub


# -- the checks ----------------------------------------------------------------------------------


def test_this_projects_settings_pass_every_check():
    assert check_broker() == []
    assert check_sqlite() == []
    assert check_namespaces() == []
    assert check_task_settings() == []


def test_a_project_broker_that_is_not_taskhubs_is_an_error():
    config = _project_broker(BROKER="dramatiq.brokers.redis.RedisBroker")
    with override_settings(DRAMATIQ_BROKER=config):
        messages = check_broker()
    assert _ids(messages) == ["taskhub.E003"]
    assert broker_module.BROKER_FACTORY in messages[0].hint
    with override_settings(DRAMATIQ_BROKER=_project_broker()):
        assert check_broker() == []
    with override_settings(DRAMATIQ_BROKER=[broker_module.BROKER_FACTORY]):
        assert _ids(check_broker()) == ["taskhub.E003"]


def test_a_project_broker_without_taskhubs_middleware_is_reported():
    with override_settings(DRAMATIQ_BROKER=_project_broker(MIDDLEWARE=[])):
        messages = check_broker()
    assert _ids(messages) == ["taskhub.E004", "taskhub.W003"]
    assert TRACKING in next(m for m in messages if m.id == "taskhub.E004").hint
    with override_settings(DRAMATIQ_BROKER=_project_broker(MIDDLEWARE=[TRACKING])):
        assert _ids(check_broker()) == ["taskhub.W003"]


def test_a_url_taskhub_cannot_connect_to_is_an_error_that_hides_its_password():
    with override_taskhub(REDIS_URL="http://user:s3cret@host/"):
        messages = check_broker()
    assert _ids(messages) == ["taskhub.E005"]
    assert "s3cret" not in messages[0].msg and "'http://'" in messages[0].msg
    with override_taskhub(BROKER_URL="kafka://host:9092"):
        assert _ids(check_broker()) == ["taskhub.E005"]
    with override_taskhub(BROKER_URL="amqps://host/vhost"):
        assert check_broker() == []


def test_no_redis_at_all_is_an_error(no_redis_env, monkeypatch):
    monkeypatch.setattr(embedded, "available", lambda: False)
    messages = check_broker()
    assert _ids(messages) == ["taskhub.E006"]
    assert "django-taskhub[embedded]" in messages[0].hint
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert check_broker() == []


def test_two_different_broker_urls_are_an_error():
    config = _project_broker(OPTIONS={"url": "redis://a:6379/0"})
    with override_settings(DRAMATIQ_BROKER=config):
        with override_taskhub(BROKER_URL="redis://b:6379/0"):
            assert _ids(check_broker()) == ["taskhub.E007"]
        with override_taskhub(BROKER_URL="redis://a:6379/0"):
            assert check_broker() == []


def test_a_project_without_django_dramatiq_is_told_to_add_it(monkeypatch):
    installed = checks_module.apps.is_installed

    def is_installed(name: str) -> bool:
        return name != "django_dramatiq" and installed(name)

    monkeypatch.setattr(checks_module.apps, "is_installed", is_installed)
    messages = check_broker()
    assert _ids(messages) == ["taskhub.E008"]


def _sqlite(**options) -> dict:
    databases = copy.deepcopy(settings.DATABASES)
    databases["default"] = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": "unused.sqlite3",
        "OPTIONS": options,
    }
    return databases


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_sqlite_without_taskhubs_options_is_a_warning_naming_what_it_lacks():
    with override_settings(DATABASES=_sqlite()):
        messages = check_sqlite()
    assert _ids(messages) == ["taskhub.W002"]
    for lacking in ("IMMEDIATE", "timeout", "journal_mode=WAL"):
        assert lacking in messages[0].msg
    assert "SQLITE_OPTIONS" in messages[0].hint

    with override_settings(DATABASES=_sqlite(**{**SQLITE_OPTIONS, "timeout": 5})):
        (message,) = check_sqlite()
    assert "timeout" in message.msg and "IMMEDIATE" not in message.msg

    with override_settings(DATABASES=_sqlite(**SQLITE_OPTIONS)):
        assert check_sqlite() == []


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_postgresql_needs_no_sqlite_options():
    databases = copy.deepcopy(settings.DATABASES)
    databases["default"] = {"ENGINE": "django.db.backends.postgresql", "NAME": "x"}
    with override_settings(DATABASES=databases):
        assert check_sqlite() == []


def test_persist_tasks_false_is_refused_saying_why():
    with override_taskhub(PERSIST_TASKS=False):
        messages = check_task_settings()
    assert _ids(messages) == ["taskhub.E009"]
    assert "row in the database before it is a message" in messages[0].msg
    assert "RETENTION_DAYS" in messages[0].hint
    with override_taskhub(PERSIST_TASKS=True):
        assert check_task_settings() == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MAX_CONCURRENT_TASKS", 0),
        ("DEFAULT_MAX_ATTEMPTS", 0),
        ("DEFAULT_MAX_ATTEMPTS", 101),
        ("DEFAULT_TIMEOUT", 0),
        ("DEFAULT_TIMEOUT", -5.0),
        ("DEFAULT_RETRY_SCHEDULE", []),
        ("DEFAULT_RETRY_SCHEDULE", [1, -1]),
        ("DEFAULT_RETRY_SCHEDULE", [1, "5"]),
        ("BULK_ACTION_INLINE_MAX", -1),
    ],
)
def test_a_task_setting_out_of_range_is_refused_naming_the_key(key, value):
    with override_taskhub(**{key: value}):
        messages = check_task_settings()
    assert _ids(messages) == ["taskhub.E010"]
    assert key in messages[0].msg and repr(DEFAULTS[key]) in messages[0].hint


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MAX_CONCURRENT_TASKS", None),
        ("MAX_CONCURRENT_TASKS", 1),
        ("DEFAULT_MAX_ATTEMPTS", 100),
        ("DEFAULT_TIMEOUT", 0.5),
        ("DEFAULT_RETRY_SCHEDULE", (0, 2.5)),
        ("ENABLE_PRIORITY", False),
        ("BULK_ACTION_INLINE_MAX", 0),
    ],
)
def test_a_task_setting_in_range_passes(key, value):
    with override_taskhub(**{key: value}):
        assert check_task_settings() == []
        assert check_namespaces() == []


def test_a_task_setting_of_the_wrong_type_is_reported_once_by_the_type_check():
    with override_taskhub(DEFAULT_TIMEOUT="300", MAX_CONCURRENT_TASKS=2.5):
        assert check_task_settings() == []
        assert _ids(check_namespaces()) == ["taskhub.E001", "taskhub.E001"]


def test_the_documents_environment_names_set_taskhubs_keys(monkeypatch):
    monkeypatch.setenv("DEFAULT_MAX_RETRIES", "3")
    monkeypatch.setenv("TASK_TIMEOUT", "45")
    monkeypatch.setenv("ENABLE_TASK_PRIORITY", "false")
    monkeypatch.setenv("PERSIST_TASKS", "false")
    monkeypatch.setenv("TASKHUB_MAX_CONCURRENT_TASKS", "10")
    monkeypatch.setenv("TASKHUB_DEFAULT_RETRY_SCHEDULE", "1, 5,15,60")
    project = runpy.run_path(str(PROJECT_SETTINGS))["TASKHUB"]
    assert project["DEFAULT_MAX_ATTEMPTS"] == 3
    assert project["DEFAULT_TIMEOUT"] == 45.0
    assert project["ENABLE_PRIORITY"] is False
    assert project["PERSIST_TASKS"] is False  # which taskhub.E009 then refuses
    assert project["MAX_CONCURRENT_TASKS"] == 10
    assert project["DEFAULT_RETRY_SCHEDULE"] == [1.0, 5.0, 15.0, 60.0]
    # taskhub's own variable of the same key wins
    monkeypatch.setenv("TASKHUB_DEFAULT_MAX_ATTEMPTS", "7")
    assert runpy.run_path(str(PROJECT_SETTINGS))["TASKHUB"]["DEFAULT_MAX_ATTEMPTS"] == 7


def test_a_misspelt_new_key_is_reported_with_the_right_one():
    with override_taskhub(REDIS_ULR="redis://x"):
        messages = check_namespaces()
    assert _ids(messages) == ["taskhub.W001"]
    assert "'REDIS_URL'" in messages[0].hint


def test_var_dir_takes_a_path_or_a_string_not_a_number():
    with override_taskhub(VAR_DIR=Path("/tmp/x")):
        assert check_namespaces() == []
    with override_taskhub(VAR_DIR=3):
        assert _ids(check_namespaces()) == ["taskhub.E001"]


def test_docs_settings_lists_every_key_and_every_check_id():
    text = (ROOT / "docs" / "settings.md").read_text()
    assert [key for key in DEFAULTS if f"| `{key}` |" not in text] == []
    sources = "".join(
        (ROOT / "taskhub" / path).read_text() for path in ("conf.py", "engine/checks.py")
    )
    ids = set(re.findall(r'"(taskhub\.[EW]\d{3})"', sources)) | {"taskhub.W001", "taskhub.E001"}
    assert len(ids) >= 11
    assert sorted(i for i in ids if f"| `{i}` |" not in text) == []
