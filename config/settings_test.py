"""Settings for the test suite: the project's settings plus a test app of tasks, and timings
short enough that recovery drills finish in seconds. Worker and dispatcher processes started by
the tests use this module too, so every process agrees."""

import json
import os
import uuid
from urllib.parse import quote, urlsplit, urlunsplit

from taskhub.conf import DEFAULT_DRAMATIQ_BROKER

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS, TASKHUB

INSTALLED_APPS = [*INSTALLED_APPS, "tests.taskapp"]

# One key prefix per test session (inherited by the processes it starts): sessions sharing a
# Redis never see each other's keys or messages.
os.environ.setdefault("TASKHUB_KEY_PREFIX", f"th-test-{uuid.uuid4().hex[:8]}")

# RabbitMQ as the broker: TASKHUB_TEST_BROKER=rabbitmq (local server, guest account) or an
# amqp:// BROKER_URL. Each session gets its own vhost named after its key prefix — RabbitMQ queue
# names have no namespace, so sessions sharing a server would otherwise take each other's
# messages. tests/conftest.py creates the vhost and deletes it afterwards.
_broker_url = TASKHUB.get("BROKER_URL", "")
if os.environ.get("TASKHUB_TEST_BROKER") == "rabbitmq" and not _broker_url.startswith("amqp"):
    _broker_url = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
if _broker_url.startswith(("amqp://", "amqps://")):
    _broker_url = urlunsplit(
        urlsplit(_broker_url)._replace(path="/" + quote(os.environ["TASKHUB_KEY_PREFIX"], safe=""))
    )

TASKHUB = {
    **TASKHUB,
    "BROKER_URL": _broker_url,
    "KEY_PREFIX": os.environ["TASKHUB_KEY_PREFIX"],
    "HEARTBEAT_INTERVAL": 1.0,
    "LIFELINE_TIMEOUT": 4.0,
    "LIFELINE_INTERVAL": 1.0,
    "REDISPATCH_AFTER": 4.0,
    "DISPATCH_POLL_INTERVAL": 0.5,
    # Tests talk to servers on localhost; the SSRF tests turn the guard back on explicitly.
    "ALLOW_PRIVATE_TARGETS": True,
    "QUEUES": {
        **TASKHUB.get("QUEUES", {}),
        "default": {"concurrency": None},
        "capped": {"concurrency": 3},
        "single": {"concurrency": 1},
        "rated": {"concurrency": None, "rate": 5},
        "email": {"concurrency": 5},
        "image-processing": {"concurrency": 3},
        "blockchain-events": {"concurrency": 5, "rate": 10},
        "notifications": {"concurrency": 5},
        "analytics": {"concurrency": 2},
        "webhooks": {"concurrency": 10},
    },
    **json.loads(os.environ.get("TASKHUB_SETTINGS_JSON", "{}")),
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Django's Tasks framework on taskhub (tests/contrib): one alias without retries, one with a fast
# retry policy, one limited to two queues. Worker processes read the same aliases.
_TASKHUB_BACKEND = "taskhub.contrib.django_tasks.TaskhubBackend"
TASKS = {
    "default": {"BACKEND": _TASKHUB_BACKEND, "OPTIONS": {"MAX_ATTEMPTS": 1}},
    "retrying": {"BACKEND": _TASKHUB_BACKEND, "OPTIONS": {"MAX_ATTEMPTS": 3, "RETRY": [0.2]}},
    "limited": {"BACKEND": _TASKHUB_BACKEND, "QUEUES": ["default", "single"]},
}

# Drills: every message a worker takes is sent twice (tests/taskapp/duplicator.py). The project
# sets no DRAMATIQ_BROKER (taskhub configures it); this one is taskhub's plus the duplicator.
if os.environ.get("TASKHUB_TEST_DUPLICATE_MESSAGES") == "1":
    DRAMATIQ_BROKER = {
        **DEFAULT_DRAMATIQ_BROKER,
        "MIDDLEWARE": [
            "tests.taskapp.duplicator.DuplicateEveryMessage",
            *DEFAULT_DRAMATIQ_BROKER["MIDDLEWARE"],
        ],
    }
