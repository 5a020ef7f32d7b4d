"""The whole OpenAPI schema fuzzed as an admin (schemathesis, in-process over WSGI): for every
operation, generated valid and invalid requests must never get a server error, never a status
code the schema does not list, and always a body of the documented shape.

Twice: once with generated path parameters (almost always nothing there: the 404s and 400s),
and once, for the operations whose path names something, with the ids of rows that exist, so
bodies and queries reach the code behind the lookup (changing a stored definition, acting on a
task or a run in its current state).

Deterministic (a fixed derandomised seed) and bounded (``MAX_EXAMPLES`` per operation), so a
run takes the same requests each time and the whole fuzz stays within a few minutes.
"""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,
)
APP = get_wsgi_application()


@pytest.fixture
def admin_token(tokens):
    return tokens["admin"]


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Requests go through the real WSGI handler, whose end-of-request signal would close the
    test's database connection (and its transaction); Django's test client disconnects it the
    same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def existing(db):
    """Path parameter → the id or name of a row that exists (``id`` is per resource)."""
    from kyc.models import KycCase
    from notifications.services import create_notification
    from taskhub.engine.enqueue import schedule
    from taskhub.scheduler.schedules import create_schedule
    from taskhub.workflows.definitions import create_definition
    from taskhub.workflows.start import start_workflow
    from webhooks.services import create_endpoint, publish

    task = schedule("taskhub.ping", {})
    create_schedule("fuzzed", "taskhub.ping", interval=3600)
    definition = create_definition(name="fuzzed", spec={"initialTask": {"type": "taskhub.ping"}})
    run = start_workflow("fuzzed", {})
    endpoint, _ = create_endpoint("https://hooks.example.com/in", ["task.completed"])
    delivery = publish("task.completed", {"task_id": str(task.id)})[0]
    case = KycCase.objects.create(
        user_id="fuzzed",
        provider="dtr",
        document_type="passport",
        document="kyc/fuzzed.png",
        document_name="fuzzed.png",
    )
    notification = create_notification("fuzzed", "info", "hello")
    return {
        "task_id": task.id,
        "job_id": task.id,
        "queue_name": task.queue,
        "name": "fuzzed",
        "run_id": run.id,
        "definition_id": definition.id,
        "endpoint_id": endpoint.id,
        "delivery_id": delivery.id,
        "user_id": "fuzzed",
        ("/api/kyc/cases/{id}", "id"): case.id,
        ("/api/kyc/cases/{id}/rerun", "id"): case.id,
        ("/api/notifications/{id}/read", "id"): notification.id,
    }


def _call(case, token):
    case.call_and_validate(app=APP, headers={"Authorization": f"Token {token}"}, checks=CHECKS)


@pytest.mark.django_db
@schema.parametrize()
@FUZZ_SETTINGS
def test_no_input_gets_a_server_error_or_an_undocumented_answer(case, admin_token):
    _call(case, admin_token)


@pytest.mark.django_db
@schema.include(path_regex=r"\{").parametrize()
@FUZZ_SETTINGS
def test_no_input_on_an_existing_row_gets_a_server_error_or_an_undocumented_answer(
    case, admin_token, existing
):
    params = case.path_parameters or {}
    case.path_parameters = {
        name: str(existing.get((case.path, name), existing.get(name, value)))
        for name, value in params.items()
    }
    _call(case, admin_token)
