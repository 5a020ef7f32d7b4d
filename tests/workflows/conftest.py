import pytest

from tests.support import Stack


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    """One worker process (8 threads) and a dispatcher (with the lifeline and the workflow
    reconciler) for the module's tests."""
    with django_db_blocker.unblock():
        running = Stack(processes=1, threads=8).start()
    yield running
    running.stop()


@pytest.fixture
def e2e(stack, transactional_db):
    return stack
