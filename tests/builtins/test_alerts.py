"""Operator alerts: a burst of dead letters of one task type sends one alert with the count."""

import json

import pytest

from taskhub import schedule_many
from taskhub.engine.broker import get_redis, key
from taskhub.models import DeadLetter
from tests.builtins.conftest import ALERT_ENV
from tests.support import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_thousand_dead_letters_of_one_kind_send_one_alert_with_the_count(e2e, smtp):
    # The stack alerts on test.permanent only, once no failure came for 4 s.
    assert ALERT_ENV["TASKHUB_ALERT_TASKS"] == "test.permanent"

    schedule_many("test.permanent", [{} for _ in range(1000)], max_attempts=1)

    wait_for(
        lambda: DeadLetter.objects.filter(task_name="test.permanent").count() == 1000,
        timeout=120,
        interval=0.5,
        message="1000 dead letters",
    )
    alerts = wait_for(
        lambda: smtp.handler.to("ops@example.com"), timeout=45, message="the alert e-mail"
    )
    (email,) = alerts
    assert email["Subject"] == "[taskhub] 1000 failed tasks: test.permanent"
    assert "card declined" in email.get_body(("plain",)).get_content()
    (event,) = [json.loads(e) for e in get_redis().lrange(key("test", "operator-alerts"), 0, -1)]
    assert event["type"] == "task.dead_lettered" and event["data"]["count"] == 1000
