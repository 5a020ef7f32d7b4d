import pytest

from tests.support import Stack

#: Queues the module stack's worker serves; "analytics" is left out on purpose (a queue no worker
#: serves must not run).
SERVED_QUEUES = ["default", "single", "capped"]


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    """One worker process (4 threads) and a dispatcher for the module's tests."""
    with django_db_blocker.unblock():
        running = Stack(processes=1, threads=4, queues=SERVED_QUEUES).start()
    yield running
    running.stop()


@pytest.fixture
def e2e(stack, transactional_db):
    return stack
