"""The scheduler's heartbeat in /healthz: degraded when schedules exist but nobody polls."""

import time

import pytest

from taskhub.console import health
from taskhub.engine.broker import get_redis
from taskhub.scheduler import schedules
from taskhub.scheduler.runner import Scheduler, _heartbeat_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_heartbeat():
    get_redis().delete(_heartbeat_key())
    yield
    get_redis().delete(_heartbeat_key())


def scheduler_check(client):
    return next(c for c in health.report()["checks"] if c["name"] == "scheduler")


def test_the_scheduler_check_is_registered_and_skipped_without_schedules(client):
    assert health.CHECKS["scheduler"] is health.scheduler_check
    assert scheduler_check(client)["status"] == "skipped"


def test_an_enabled_schedule_with_no_scheduler_polling_degrades_health(client):
    schedules.create_schedule("hourly", "taskhub.ping", cron="0 * * * *")
    check = scheduler_check(client)
    assert check["status"] == "degraded" and "late" in check["message"]


def test_a_poll_records_a_heartbeat_and_health_is_ok_again(client):
    schedules.create_schedule("hourly", "taskhub.ping", cron="0 * * * *")
    Scheduler(poll_interval=1).poll()
    check = scheduler_check(client)
    assert check["status"] == "ok" and check["last_poll_seconds_ago"] < 5


def test_a_stale_heartbeat_is_reported_with_its_age(client):
    schedules.create_schedule("hourly", "taskhub.ping", cron="0 * * * *")
    get_redis().set(_heartbeat_key(), repr(time.time() - 600))
    check = scheduler_check(client)
    assert check["status"] == "degraded" and check["message"].startswith("no poll for 6")
