"""A request carrying characters the database cannot store (NUL, which PostgreSQL refuses in
text and jsonb, arrives as ``\\u0000`` in JSON) is bad input: 400 naming the field, nothing
written — not a 500 from the database. (The API's own fields refused NUL already; payloads
reached the database.)"""

import pytest

from taskhub.models import Task, TaskEvent

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"task": "taskhub.ping", "payload": {"x": "a\\u0000b"}}', "payload"),
        ('{"task": "taskhub.ping", "payload": {"a\\u0000": 1}}', "payload"),
        ('{"task": "taskhub.ping", "payload": {"x": "\\ud800"}}', "payload"),
        ('{"task": "taskhub.ping", "correlation_id": "a\\u0000b"}', "correlation_id"),
        ('{"task": "taskhub.ping", "dedup_key": "a\\u0000b"}', "dedup_key"),
    ],
)
def test_unstorable_characters_are_a_400_naming_the_field_and_write_nothing(operator, body, field):
    response = operator.post("/api/tasks", body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"], response.json()
    assert "not" in response.json()["error"]  # "... (not storable ...)", "... not allowed"
    assert (Task.objects.count(), TaskEvent.objects.count()) == (0, 0)
