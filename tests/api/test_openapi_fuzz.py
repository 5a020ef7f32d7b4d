"""The whole OpenAPI schema fuzzed as an admin (schemathesis, in-process over WSGI): for every
operation, generated valid and invalid requests must never get a server error, never a status
code the schema does not list, and always a body of the documented shape.

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

MAX_EXAMPLES = 25
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


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_gets_a_server_error_or_an_undocumented_answer(case, admin_token):
    case.call_and_validate(
        app=APP, headers={"Authorization": f"Token {admin_token}"}, checks=CHECKS
    )
