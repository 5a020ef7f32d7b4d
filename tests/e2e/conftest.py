import pytest

from tests.support import Stack


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    """One worker process (4 threads) and a dispatcher for the module's tests."""
    with django_db_blocker.unblock():
        running = Stack(processes=1, threads=4).start()
    yield running
    running.stop()


@pytest.fixture
def e2e(stack, transactional_db):
    """A test that talks to real processes: rows must be committed for them to see."""
    return stack
