"""The dispatcher lease (taskhub/engine/leadership.py), in this process on the real database: one
holder at a time, a holder that stops renewing loses it, a leader that lost it starts no cycle.

A holder's death, as the database sees it, is a holder that stops renewing: these tests stop
calling it. tests/e2e/test_embedded_dispatcher.py kills real worker processes.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

from taskhub.engine import leadership
from taskhub.engine.dispatcher import Dispatcher
from taskhub.engine.leadership import (
    DISPATCHER_LEASE,
    DispatcherCandidate,
    LeaderDispatcher,
    LeadershipLost,
    Lease,
    current_leader,
)
from taskhub.models import LeaderLease

#: LIFELINE_TIMEOUT for these tests: a lease of 0.3 s, renewed (and looked at) every 0.06 s.
TIMEOUT = 0.6


@pytest.fixture
def short_lease():
    with override_settings(TASKHUB={**settings.TASKHUB, "LIFELINE_TIMEOUT": TIMEOUT}):
        yield leadership.lease_seconds()


def outlive(lease_seconds: float) -> None:
    time.sleep(lease_seconds + 0.05)


@pytest.mark.django_db
def test_of_two_contenders_one_wins_and_the_other_sees_who(short_lease):
    a, b = Lease(DISPATCHER_LEASE, "a"), Lease(DISPATCHER_LEASE, "b")

    assert a.acquire() is True
    assert b.acquire() is False
    assert b.leader == "a" and not b.held()
    assert a.held() and current_leader() == "a"
    # Renewing keeps it; the other still cannot take it.
    assert a.acquire() is True and b.acquire() is False


@pytest.mark.django_db
def test_a_holder_that_stops_renewing_loses_the_lease_and_stops_at_once(short_lease):
    a, b = Lease(DISPATCHER_LEASE, "a"), Lease(DISPATCHER_LEASE, "b")
    assert a.acquire()
    acquired_at = LeaderLease.objects.get().acquired_at

    outlive(short_lease)  # "a" died, hung or was SIGSTOPped: no renewal for a whole lease

    assert current_leader() is None
    assert not a.held()  # by its own clock, before the database says so
    assert b.acquire() is True
    row = LeaderLease.objects.get()
    assert (row.holder, row.acquired_at > acquired_at) == ("b", True)
    # "a" resumes: it finds the lease taken and must not dispatch.
    assert a.keep() is False and a.leader == "b"


@pytest.mark.django_db
def test_the_holder_renews_before_the_lease_runs_out(short_lease):
    a, b = Lease(DISPATCHER_LEASE, "a"), Lease(DISPATCHER_LEASE, "b")
    assert a.acquire()
    acquired_at = LeaderLease.objects.get().acquired_at

    deadline = time.monotonic() + 3 * short_lease
    while time.monotonic() < deadline:  # a leader's loop: keep() before every cycle
        assert a.keep() is True
        assert b.acquire() is False
        time.sleep(short_lease / 10)

    assert LeaderLease.objects.get().acquired_at == acquired_at  # one term, renewed


@pytest.mark.django_db
def test_a_released_lease_is_taken_at_the_next_look(short_lease):
    a, b = Lease(DISPATCHER_LEASE, "a"), Lease(DISPATCHER_LEASE, "b")
    assert a.acquire()

    a.release()

    assert not a.held() and current_leader() is None
    assert b.acquire() is True
    b.release()
    a.release()  # not its lease any more: changes nothing
    assert LeaderLease.objects.get().holder == "b"


@pytest.mark.django_db
def test_an_expired_lease_nobody_took_is_the_holders_again(short_lease):
    a = Lease(DISPATCHER_LEASE, "a")
    assert a.acquire()
    outlive(short_lease)
    assert not a.held()

    assert a.keep() is True and a.held()


@pytest.mark.django_db(transaction=True)
def test_contenders_racing_for_a_free_lease_get_one_leader(short_lease):
    contenders = [Lease(DISPATCHER_LEASE, f"c{i}") for i in range(6)]

    def contend(lease: Lease, start: threading.Barrier, won: list[str]) -> None:
        start.wait()
        try:
            if lease.acquire():
                won.append(lease.holder)
        finally:
            connection.close()

    for rounds in range(3):
        start = threading.Barrier(len(contenders))
        won: list[str] = []
        threads = [threading.Thread(target=contend, args=(c, start, won)) for c in contenders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(won) == 1, (rounds, won)
        assert current_leader() == won[0]
        outlive(short_lease)  # the next round races for an expired lease


@pytest.mark.django_db
def test_a_leader_that_lost_its_lease_runs_no_cycle(short_lease, monkeypatch):
    cycles = []
    monkeypatch.setattr(Dispatcher, "dispatch_once", lambda self: cycles.append(1) or [])
    a, b = Lease(DISPATCHER_LEASE, "a"), Lease(DISPATCHER_LEASE, "b")
    assert a.acquire()
    leader = LeaderDispatcher(a)
    assert leader.dispatch_once() == [] and cycles == [1]

    outlive(short_lease)
    assert b.acquire()

    with pytest.raises(LeadershipLost):
        leader.dispatch_once()
    assert cycles == [1]


@pytest.mark.django_db
def test_a_leader_whose_lease_cannot_be_renewed_stops_once_it_may_have_run_out(
    short_lease, monkeypatch
):
    a = Lease(DISPATCHER_LEASE, "a")
    assert a.acquire()
    time.sleep(leadership.step_seconds())  # a renewal is due
    from django.db import OperationalError

    def refuse():
        raise OperationalError("the database is away")

    monkeypatch.setattr(a, "acquire", refuse)
    assert a.keep() is True  # still within the lease it last renewed
    outlive(short_lease)
    assert a.keep() is False


def run_candidates(holders: list[str]) -> dict[str, tuple[DispatcherCandidate, threading.Thread]]:
    running = {}
    for holder in holders:
        candidate = DispatcherCandidate(holder)
        thread = threading.Thread(target=candidate.run_forever, daemon=True)
        thread.start()
        running[holder] = (candidate, thread)
    return running


def wait_for_leader(expected=None, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader = current_leader()
        if leader is not None and (expected is None or leader in expected):
            return leader
        time.sleep(0.02)
    raise AssertionError(f"no leader among {expected} within {timeout}s")


@pytest.mark.django_db(transaction=True)
def test_one_candidate_leads_and_a_stopped_leader_hands_over(short_lease, monkeypatch):
    """Candidates as workers and `taskhub dispatcher` run them: only the leader runs cycles;
    when it stops, it gives the lease up and another candidate leads."""
    cycles: dict[str, int] = {}

    def cycle(self):
        cycles[self.lease.holder] = cycles.get(self.lease.holder, 0) + 1
        return []

    monkeypatch.setattr(Dispatcher, "dispatch_once", cycle)
    monkeypatch.setattr(Dispatcher, "next_due_in", lambda self: 0.02)
    monkeypatch.setattr(Dispatcher, "_wait", lambda self, timeout: time.sleep(timeout))
    monkeypatch.setattr("taskhub.engine.lifeline.Lifeline.run_once", lambda self: None)
    monkeypatch.setattr("taskhub.engine.dispatcher.mark_dispatcher_alive", lambda: None)
    running = run_candidates(["x", "y", "z"])
    try:
        first = wait_for_leader()
        time.sleep(3 * short_lease)
        assert set(cycles) == {first}, cycles  # nobody else ran a cycle meanwhile

        candidate, thread = running.pop(first)
        candidate.stop()
        thread.join(10)
        assert not thread.is_alive()
        second = wait_for_leader(expected=set(running), timeout=2 * leadership.step_seconds() + 1)
        ran = cycles[second]
        time.sleep(3 * short_lease)
        assert cycles[second] > ran
        assert set(cycles) == {first, second}
    finally:
        for candidate, thread in running.values():
            candidate.stop()
            thread.join(10)
    assert current_leader() is None  # the last leader gave it up too


def test_a_worker_process_runs_one_embedded_candidate_at_most(monkeypatch):
    started = []
    monkeypatch.setattr(
        leadership.DispatcherCandidate,
        "run_forever",
        lambda self: started.append(self.lease.holder) or self._stop.wait(10),
    )
    try:
        first = leadership.start_embedded("w1")
        assert leadership.start_embedded("w2") is first
    finally:
        leadership.stop_embedded()
    assert started == ["w1"]
    with override_settings(TASKHUB={**settings.TASKHUB, "EMBEDDED_DISPATCHER": False}):
        assert leadership.start_embedded("w3") is None
    assert started == ["w1"]


@pytest.mark.django_db
def test_the_dispatcher_probe_counts_a_standby_that_looked_at_the_lease(short_lease, redis_client):
    """`taskhub health --dispatcher` must not fail (and have systemd restart) a healthy standby."""
    from taskhub.cli.probes import check_dispatcher
    from taskhub.engine.dispatcher import dispatcher_alive_key
    from taskhub.engine.leadership import standby_key

    redis_client.delete(dispatcher_alive_key(), standby_key())
    assert check_dispatcher()["status"] == "down"
    assert Lease(DISPATCHER_LEASE, "elsewhere").acquire()

    assert DispatcherCandidate("here")._contend() is False

    assert check_dispatcher() == {
        "name": "dispatcher",
        "status": "ok",
        "role": "standby",
        "leader": "elsewhere",
    }
    redis_client.delete(standby_key())
