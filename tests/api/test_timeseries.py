"""Per-queue throughput, wait and run time over time (``GET /api/metrics/timeseries``): the
buckets and percentiles the database computes match a reference computed here in Python, on
PostgreSQL and SQLite alike."""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid

import pytest
from django.utils import timezone

from taskhub.console import timeseries
from taskhub.models import Task, TaskStatus

pytestmark = pytest.mark.django_db

COMPLETED, FAILED = TaskStatus.COMPLETED, TaskStatus.FAILED


@pytest.fixture(autouse=True)
def fresh_series():
    timeseries.clear()
    yield
    timeseries.clear()


def finished(queue, status, completed_at, *, wait=None, run=None):
    """A finished row: queued ``wait`` s before it started (None: never started after it was
    last queued), its last attempt ``run`` s long."""
    started = completed_at - dt.timedelta(seconds=run or 0)
    queued = started - dt.timedelta(seconds=wait) if wait is not None else started
    return Task(
        id=uuid.uuid4(),
        name="taskhub.ping",
        queue=queue,
        status=status,
        attempt=1,
        scheduled_at=queued,
        queued_at=queued if wait is not None else started + dt.timedelta(seconds=1),
        started_at=started,
        completed_at=completed_at,
        duration=run,
        created_at=queued,
        updated_at=completed_at,
    )


def nearest_rank(values, p):
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered)) - 1] if ordered else None


def test_one_minute_counts_and_percentiles_are_exact():
    now = timezone.now()
    minute = now.replace(second=0, microsecond=0) - dt.timedelta(minutes=3)
    # the first on the bucket's very start: bucketing must not depend on float rounding
    rows = [
        finished("email", COMPLETED, minute + dt.timedelta(seconds=i), wait=i + 1, run=(i + 1) / 10)
        for i in range(20)
    ]
    rows += [
        finished("email", FAILED, minute + dt.timedelta(seconds=30 + i), wait=100, run=9.0)
        for i in range(2)
    ]
    Task.objects.bulk_create(rows)

    data = timeseries.compute(timeseries.WINDOWS["1h"], now)

    assert data["bucketSeconds"] == 60 and len(data["buckets"]) == 60
    assert data["buckets"][-4] == minute
    email = next(q for q in data["queues"] if q["queue"] == "email")
    assert email["completed"][-4] == 20 and email["failed"][-4] == 2
    assert sum(email["completed"]) == 20 and sum(email["failed"]) == 2
    # waits 1..20 and two of 100 (22 values): rank ceil(11) = 11 → 11, rank ceil(20.9) = 21 → 100
    assert (email["waitP50"][-4], email["waitP95"][-4]) == (11.0, 100.0)
    # runs of the 20 completed only: 0.1..2.0 → rank 10 → 1.0, rank 19 → 1.9
    assert (email["runP50"][-4], email["runP95"][-4]) == (1.0, 1.9)
    assert email["waitP50"][-5] is None and email["completed"][-5] == 0
    # every declared queue is listed, with nothing in it
    assert {"default", "email"} <= {q["queue"] for q in data["queues"]}


@pytest.mark.parametrize("window_name", ["1h", "1d"])
def test_buckets_and_percentiles_match_a_reference_on_random_rows(window_name):
    window = timeseries.WINDOWS[window_name]
    now = timezone.now()
    start, end = timeseries.window_bounds(window, now)
    pick = random.Random(21)
    rows = []
    for _ in range(400):
        at = start + dt.timedelta(seconds=pick.uniform(0, (now - start).total_seconds()))
        status = pick.choice([COMPLETED, COMPLETED, COMPLETED, FAILED])
        wait = pick.choice([None, round(pick.uniform(0, 50), 3)])
        rows.append(
            finished(pick.choice(["email", "default"]), status, at, wait=wait, run=pick.random())
        )
    # outside the window: finished before it, or still running
    rows.append(finished("email", COMPLETED, start - dt.timedelta(seconds=1), wait=1, run=1))
    Task.objects.bulk_create(rows)

    data = timeseries.compute(window, now)

    assert data["from"] == start and data["to"] == end > now
    assert end - start == dt.timedelta(seconds=window.bucket_seconds * window.buckets)
    for series in data["queues"]:
        mine = [r for r in rows if r.queue == series["queue"] and start <= r.completed_at]
        for index in range(window.buckets):
            low = start + dt.timedelta(seconds=index * window.bucket_seconds)
            high = low + dt.timedelta(seconds=window.bucket_seconds)
            bucket = [r for r in mine if low <= r.completed_at < high]
            waits = [
                (r.started_at - r.queued_at).total_seconds()
                for r in bucket
                if r.started_at >= r.queued_at
            ]
            runs = [r.duration for r in bucket if r.status == COMPLETED]
            assert series["completed"][index] == sum(r.status == COMPLETED for r in bucket)
            assert series["failed"][index] == sum(r.status == FAILED for r in bucket)
            for field, values, p in (
                ("waitP50", waits, 0.5),
                ("waitP95", waits, 0.95),
                ("runP50", runs, 0.5),
                ("runP95", runs, 0.95),
            ):
                expected = nearest_rank(values, p)
                if expected is None:
                    assert series[field][index] is None, (field, index)
                else:
                    assert series[field][index] == pytest.approx(expected, abs=2e-3), (field, index)
    assert sum(sum(q["completed"]) + sum(q["failed"]) for q in data["queues"]) == 400


def test_the_endpoint_serves_one_queue_or_all_for_either_window(viewer):
    now = timezone.now()
    Task.objects.bulk_create(
        [
            finished("email", COMPLETED, now - dt.timedelta(hours=5), wait=2, run=1),
            finished("default", FAILED, now - dt.timedelta(seconds=5), wait=1, run=1),
        ]
    )

    hour = viewer.get("/api/metrics/timeseries").json()
    day = viewer.get("/api/metrics/timeseries?window=1d&queue=email").json()

    assert hour["window"] == "1h" and len(hour["buckets"]) == 60
    totals = {q["queue"]: sum(q["completed"]) + sum(q["failed"]) for q in hour["queues"]}
    assert totals["email"] == 0 and totals["default"] == 1
    assert day["window"] == "1d" and day["bucketSeconds"] == 900 and len(day["buckets"]) == 96
    assert [q["queue"] for q in day["queues"]] == ["email"]
    email = day["queues"][0]
    assert sum(email["completed"]) == 1
    assert [w for w in email["waitP50"] if w is not None] == [2.0]


@pytest.mark.parametrize(
    "query,field",
    [
        ("window=2h", "window"),
        ("window=7d", "window"),
        ("queue=no-such-queue", "queue"),
        ("queue=" + "q" * 101, "queue"),
    ],
)
def test_bad_windows_and_unknown_queues_are_400(viewer, query, field):
    response = viewer.get(f"/api/metrics/timeseries?{query}")
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()


def test_the_series_need_a_viewer(as_role):
    assert as_role(None).get("/api/metrics/timeseries").status_code == 401
    assert as_role("viewer").get("/api/metrics/timeseries").status_code == 200
