"""``/api/schedules``: each endpoint by role, what it does, and bad input writing nothing."""

import pytest

from taskhub.models import OperatorAction, ScheduleRun, Task, TaskSchedule
from taskhub.scheduler import schedules
from tests.api.role_matrix import assert_answers_by_role, by_role

pytestmark = pytest.mark.django_db

_n = iter(range(10**6))


def stored(**kwargs) -> str:
    name = f"sched-{next(_n)}"
    schedules.create_schedule(name, "taskhub.ping", **({"cron": "*/5 * * * *"} | kwargs))
    return name


def endpoints():
    return [
        ("get", lambda: "/api/schedules", None, "viewer"),
        (
            "post",
            lambda: "/api/schedules",
            {"name": f"new-{next(_n)}", "task": "taskhub.ping", "interval": 60},
            "admin",
        ),
        ("get", lambda: f"/api/schedules/{stored()}", None, "viewer"),
        ("patch", lambda: f"/api/schedules/{stored()}", {"cron": "0 * * * *"}, "admin"),
        ("delete", lambda: f"/api/schedules/{stored()}", None, "admin"),
        ("post", lambda: f"/api/schedules/{stored()}/run-now", None, "operator"),
    ]


@by_role(endpoints())
def test_each_schedule_endpoint_answers_by_role(as_role, method, url, body, least, role):
    response = getattr(as_role(role), method)(url(), body, format="json")
    assert_answers_by_role(response, role, least)


def test_an_admin_creates_a_cron_schedule_and_sees_when_it_fires_next(admin):
    response = admin.post(
        "/api/schedules",
        {
            "name": "nightly",
            "task": "taskhub.ping",
            "cron": "0 3 * * *",
            "timezone": "Europe/Paris",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "cron" and body["timezone"] == "Europe/Paris"
    assert body["next_run_at"] is not None
    assert OperatorAction.objects.filter(action="schedule.create", target_id="nightly").exists()


def test_disabling_a_schedule_through_the_api_clears_its_next_run(admin):
    name = stored()
    response = admin.patch(f"/api/schedules/{name}", {"enabled": False}, format="json")
    assert response.status_code == 200
    assert response.json()["enabled"] is False and response.json()["next_run_at"] is None


def test_run_now_schedules_the_task_and_records_a_manual_run(operator):
    name = stored()
    response = operator.post(f"/api/schedules/{name}/run-now")
    assert response.status_code == 201, response.content
    assert response.json()["trigger"] == "manual"
    assert Task.objects.filter(id=response.json()["task_id"], name="taskhub.ping").exists()
    detail = operator.get(f"/api/schedules/{name}").json()
    assert [r["trigger"] for r in detail["runs"]] == ["manual"]


def test_deleting_a_schedule_removes_it(admin):
    name = stored()
    assert admin.delete(f"/api/schedules/{name}").status_code == 204
    assert not TaskSchedule.objects.filter(name=name).exists()


@pytest.mark.parametrize(
    "method,path", [("get", ""), ("patch", ""), ("delete", ""), ("post", "/run-now")]
)
def test_an_unknown_schedule_is_404(admin, method, path):
    response = getattr(admin, method)(f"/api/schedules/no-such{path}", {}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]


@pytest.fixture
def nothing_written():
    def counts():
        return (
            TaskSchedule.objects.count(),
            ScheduleRun.objects.count(),
            Task.objects.count(),
            OperatorAction.objects.count(),
        )

    before = counts()
    yield
    assert counts() == before, "a refused request wrote rows"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"task": "taskhub.ping", "cron": "* * * * *"}, "name"),
        ({"name": "x", "cron": "* * * * *"}, "task"),
        ({"name": "x", "task": "no.such.task", "cron": "* * * * *"}, "task"),
        ({"name": "x", "task": "taskhub.ping", "cron": "not cron"}, "cron"),
        ({"name": "x", "task": "taskhub.ping", "interval": -1}, "interval"),
        (
            {"name": "x", "task": "taskhub.ping", "cron": "* * * * *", "timezone": "Mars/Base"},
            "timezone",
        ),
        ({"name": "x", "task": "taskhub.ping", "cron": "* * * * *", "interval": 5}, "cron"),
        ({"name": "x", "task": "taskhub.ping", "run_at": "2001-01-01T00:00:00Z"}, "run_at"),
        ({"name": "x", "task": "taskhub.ping", "cron": "* * * * *", "payload": [1]}, "payload"),
        ({"name": "x", "task": "taskhub.ping", "cron": "* * * * *", "crn": 1}, "crn"),
    ],
)
def test_a_bad_schedule_is_400_naming_the_field(admin, nothing_written, body, field):
    response = admin.post("/api/schedules", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"], response.json()


def test_a_duplicate_name_is_400_and_a_bad_change_leaves_the_schedule_as_it_was(admin):
    name = stored()
    again = admin.post(
        "/api/schedules", {"name": name, "task": "taskhub.ping", "cron": "* * * * *"}, format="json"
    )
    assert again.status_code == 400 and "name" in again.json()["errors"]
    bad = admin.patch(f"/api/schedules/{name}", {"cron": "61 * * * *"}, format="json")
    assert bad.status_code == 400
    assert TaskSchedule.objects.get(name=name).cron == "*/5 * * * *"
    assert not OperatorAction.objects.filter(action="schedule.update").exists()
