"""``GET /api/tasks?q=``: the search language on real rows — payload values stored as numbers or
strings, nested keys, errors and names ignoring case, id prefixes, bare words — on the test
database (PostgreSQL's containment and ILIKE, or SQLite's JSON lookups and LIKE), and a 400 that
says why for a search it can't read."""

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from taskhub.console.search import filter_tasks
from taskhub.console.search_indexes import SEARCH_INDEXES, create_search_indexes, index_states
from taskhub.engine.enqueue import schedule
from taskhub.models import Task, TaskStatus

pytestmark = pytest.mark.django_db


def found(client, q: str, **filters) -> set[str]:
    response = client.get("/api/tasks", {"q": q, **filters})
    assert response.status_code == 200, response.json()
    return {t["id"] for t in response.json()["results"]}


def ids(*tasks: Task) -> set[str]:
    return {str(t.id) for t in tasks}


def failed_with(task: Task, error: str) -> Task:
    Task.objects.filter(id=task.id).update(
        status=TaskStatus.FAILED, error=error, completed_at=timezone.now()
    )
    return task


@pytest.fixture
def rows():
    return {
        "number": schedule("test.noop", {"user_id": 42, "order": {"currency": "CHF"}}),
        "string": schedule("test.noop", {"user_id": "42", "order": {"currency": "EUR"}}),
        "other": schedule("test.noop", {"user_id": 420, "flag": True, "none": None}),
        "timeout": failed_with(
            schedule("taskhub.ping", {}, correlation_id="order-7", user_id="u-9"),
            "TimeoutError: Read timed out (TIMEOUT=30)",
        ),
        "http": in_queue(schedule("http.request", {"url": "https://example.com"}), "webhooks"),
    }


def in_queue(task: Task, queue: str) -> Task:
    Task.objects.filter(id=task.id).update(queue=queue)
    return task


def test_a_payload_value_matches_as_a_number_or_a_string(viewer, rows):
    assert found(viewer, "payload.user_id:42") == ids(rows["number"], rows["string"])
    assert found(viewer, "payload.user_id:420") == ids(rows["other"])
    assert found(viewer, "payload.flag:true") == ids(rows["other"])
    assert found(viewer, "payload.none:null") == ids(rows["other"])
    assert found(viewer, "payload.user_id:4") == set()  # the whole value, not a part


def test_a_nested_payload_key_is_reached_through_dots(viewer, rows):
    assert found(viewer, "payload.order.currency:CHF") == ids(rows["number"])
    assert found(viewer, "payload.order:CHF") == set()
    # a key named like a lookup is a key, not a lookup
    assert found(viewer, "payload.contains:x") == set()


def test_error_and_name_are_searched_inside_ignoring_case(viewer, rows):
    assert found(viewer, "error:timeout") == ids(rows["timeout"])
    assert found(viewer, 'error:"read TIMED out"') == ids(rows["timeout"])
    assert found(viewer, "name:HTTP.req") == ids(rows["http"])
    assert found(viewer, "name:noop") == ids(rows["number"], rows["string"], rows["other"])


def test_like_wildcards_in_a_term_are_taken_literally(viewer, rows):
    failed_with(rows["http"], "quota at 100% for key_1")
    assert found(viewer, "error:100%") == ids(rows["http"])
    assert found(viewer, "error:key_1") == ids(rows["http"])
    assert found(viewer, "error:100_") == set()
    assert found(viewer, "error:key%1") == set()


def test_status_queue_and_id_prefix(viewer, rows):
    task = rows["http"]
    assert found(viewer, "status:failed") == ids(rows["timeout"])
    assert found(viewer, "status:failed,pending queue:webhooks") == ids(task)
    prefix = str(task.id)[:8]
    assert ids(task) <= found(viewer, f"id:{prefix}")
    assert found(viewer, f"id:{str(task.id).upper()}") == ids(task)
    assert found(viewer, f"id:{task.id.hex}") == ids(task)


def test_bare_words_search_names_and_errors_and_equal_ids(viewer, rows):
    assert found(viewer, "timed") == ids(rows["timeout"])
    assert found(viewer, "request") == ids(rows["http"])
    assert found(viewer, "order-7") == ids(rows["timeout"])  # the correlation id
    assert found(viewer, "u-9") == ids(rows["timeout"])  # a user id, too short to search inside
    assert found(viewer, str(rows["http"].id)) == ids(rows["http"])


def test_a_dash_turns_a_term_round(viewer, rows):
    everyone = ids(*rows.values())
    assert found(viewer, "-status:failed") == everyone - ids(rows["timeout"])
    assert found(viewer, "-queue:webhooks -name:noop") == ids(rows["timeout"])
    assert found(viewer, f"-id:{rows['http'].id}") == everyone - ids(rows["http"])
    # bare words: the rows whose dedup_key is NULL (all of these) still count as not equal
    assert found(viewer, "-timed") == everyone - ids(rows["timeout"])
    assert found(viewer, "-u-9") == everyone - ids(rows["timeout"])
    # a task without the payload key does not match the term, so turned round it does
    assert found(viewer, "-payload.user_id:42") == everyone - ids(rows["number"], rows["string"])
    assert found(viewer, "-payload.order.currency:CHF") == everyone - ids(rows["number"])
    assert found(viewer, "-payload.flag:true") == everyone - ids(rows["other"])
    assert found(viewer, "-payload.none:null") == everyone - ids(rows["other"])
    assert found(viewer, "name:noop -payload.flag:true") == ids(rows["number"], rows["string"])
    assert found(viewer, '"-timed"') == set()  # in quotes, the dash is part of the word


def test_terms_and_the_list_filters_all_apply(viewer, rows):
    assert found(viewer, "payload.user_id:42 name:noop") == ids(rows["number"], rows["string"])
    assert found(viewer, "payload.user_id:42 payload.order.currency:EUR") == ids(rows["string"])
    assert found(viewer, "payload.user_id:42 timed") == set()
    assert found(viewer, "noop", status="failed") == set()
    assert found(viewer, "noop", task="test.noop") == ids(
        rows["number"], rows["string"], rows["other"]
    )


@pytest.mark.parametrize(
    ("q", "message"),
    [
        ("colour:red", "Unknown qualifier colour:"),
        ("status:done", "status:done is not a status"),
        ("id:zz", "not the start of a task id"),
        ('error:"open', "not closed"),
        ("name:ab", "3 letters or digits"),
    ],
)
def test_a_search_it_cannot_read_is_a_400_naming_q(viewer, q, message):
    response = viewer.get("/api/tasks", {"q": q})
    assert response.status_code == 400
    body = response.json()
    assert message in body["error"] and body["error"].startswith("q: ")
    assert message in body["errors"]["q"][0]


def test_a_search_over_the_length_limit_is_a_400(viewer):
    response = viewer.get("/api/tasks", {"q": "a" * 1001})
    assert response.status_code == 400
    assert "q" in response.json()["errors"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's search indexes")
def test_each_kind_of_term_is_a_condition_its_index_serves(rows):
    """The search indexes only help if the SQL has their form (ILIKE, not Django's
    UPPER(…) LIKE; the error index's partial condition; @> for the GIN index). With sequential
    scans priced out, an empty test table shows which index each term can use."""
    with connection.cursor() as cursor:  # the rows' deferred checks, or no index may be built
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    create_search_indexes(concurrently=False)  # inside the test's transaction, rolled back
    cases = {
        "payload.user_id:42": "task_payload_gin",
        "payload.order.currency:CHF": "task_payload_gin",
        "error:timeout": "task_error_trgm",
        "name:emails": "task_name_trgm",
        "refund": "task_error_trgm",
        "id:6f0c": "taskhub_task_pkey",
    }
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for q, index in cases.items():
            sql, params = filter_tasks(Task.objects.order_by(), q).query.sql_with_params()
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert index in plan, f"{q}:\n{plan}"


def test_a_search_no_serializer_checked_is_still_a_400_not_a_500():
    """``filtered_tasks`` is shared (the list, its export, bulk actions): a view that hands it
    an unchecked ``q`` gets the same 400 from the API's error handler."""
    from taskhub.console.api.errors import handle_exception
    from taskhub.console.search import SearchError
    from taskhub.console.task_filters import filtered_tasks

    with pytest.raises(SearchError) as raised:
        filtered_tasks({"q": "colour:red"})
    response = handle_exception(raised.value, {"view": None})
    assert response.status_code == 400
    assert response.data["errors"]["q"][0].startswith("Unknown qualifier colour:")


@pytest.mark.django_db(transaction=True)
def test_the_search_indexes_are_built_and_dropped_on_request_and_only_on_postgresql(capsys):
    """Opt-in (they cost every task write): ``manage.py taskhub search-indexes``."""
    if connection.vendor != "postgresql":
        with pytest.raises(CommandError) as refused:
            call_command("taskhub", "search-indexes")
        assert refused.value.returncode == 2 and "PostgreSQL" in str(refused.value)
        return
    assert set(index_states().values()) == {None}  # migrate builds none of them
    try:
        call_command("taskhub", "search-indexes")
        assert index_states() == dict.fromkeys(SEARCH_INDEXES, True)
        capsys.readouterr()
        call_command("taskhub", "search-indexes")  # again: nothing to build
        assert "built: all were there" in capsys.readouterr().out
    finally:
        call_command("taskhub", "search-indexes", "--drop")
    assert set(index_states().values()) == {None}
