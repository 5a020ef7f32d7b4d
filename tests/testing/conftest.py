import pytest

from . import tasks


@pytest.fixture(autouse=True)
def _forget_calls():
    tasks.calls.clear()
    yield
    tasks.calls.clear()
