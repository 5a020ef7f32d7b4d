"""data.sync and data.process_batch end to end: chunks commit with their checkpoint, retries
resume after the last committed chunk, item errors are recorded and counted."""

import os
import signal

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from notifications.models import Notification
from taskhub import InvalidTaskRequest, schedule
from taskhub.builtins.models import BatchCheckpoint, BatchChunk
from taskhub.models import Task
from tests.support import wait_for, wait_status

pytestmark = [pytest.mark.e2e]


def stored(label):
    """The items the handler's commit wrote, in order."""
    rows = Notification.objects.filter(user_id=label, type="test.batch_item").order_by("id")
    return [int(r.message) for r in rows]


def test_a_sync_pulls_every_page_and_resumes_after_a_server_error(e2e, web):
    web.state.pages["people"] = [
        [{"n": i, "label": "sync-1"} for i in range(p * 3, p * 3 + 3)] for p in range(4)
    ]
    web.state.fail_first["/api/people?cursor=2"] = 1  # the third page fails once

    task = schedule(
        "data.sync",
        {
            "url": f"{web.base}/api/people",
            "handler": "test.collect",
            "itemsField": "data.items",
            "nextCursorField": "next",
            "totalField": "total",
        },
    )

    done = wait_status(task.id, "completed", timeout=60)

    assert done.attempt == 2
    assert done.result["pages"] == 4 and done.result["resumed_from_chunk"] == 2
    assert (done.result["processed"], done.result["succeeded"], done.result["failed"]) == (
        12,
        12,
        0,
    )
    assert stored("sync-1") == list(range(12))  # pages 1 and 2 were not fetched or stored again
    assert web.state.hits["/api/people"] == 1 and web.state.hits["/api/people?cursor=1"] == 1


def test_a_batch_records_bad_items_and_completes_below_the_threshold(e2e):
    items = [{"n": i, "label": "batch-1"} for i in range(20)]
    items[3] = {"n": 3, "bad": True}
    items[11] = {"label": "batch-1"}  # no n

    task = schedule(
        "data.process_batch",
        {"handler": "test.collect", "items": items, "chunkSize": 5, "errorThreshold": 0.2},
    )

    done = wait_status(task.id, "completed", timeout=60)

    assert done.result["processed"] == 20 and done.result["chunks"] == 4
    assert (done.result["succeeded"], done.result["failed"]) == (18, 2)
    assert done.result["errors"] == [
        {"position": 3, "error": "item 3 is marked bad"},
        {"position": 11, "error": "'n'"},
    ]
    assert stored("batch-1") == [i for i in range(20) if i not in (3, 11)]


def test_a_batch_fails_once_errors_pass_the_threshold(e2e):
    items = [{"n": i, "bad": i % 2 == 0, "label": "batch-2"} for i in range(40)]

    task = schedule(
        "data.process_batch",
        {"handler": "test.collect", "items": items, "chunkSize": 10, "errorThreshold": 0.1},
    )

    failed = wait_status(task.id, "failed", timeout=60)

    assert failed.attempt == 1
    assert "5 of 10 items failed, over 10% of items" in failed.error
    assert "first: item 0: item 0 is marked bad" in failed.error


def test_a_csv_from_a_url_and_a_jsonl_file_from_storage_are_processed(e2e, web):
    url = web.add_file("rows.csv", b"n,label\n1,csv\n2,csv\nx,csv\n", "text/csv")
    name = default_storage.save(
        "imports/rows.jsonl",
        ContentFile(b'{"n": 7, "label": "jsonl"}\nnot json\n{"n": 8, "label": "jsonl"}\n'),
    )

    from_url = schedule(
        "data.process_batch",
        {"handler": "test.collect", "url": url, "maxErrors": 1, "errorThreshold": 0.5},
    )
    from_file = schedule(
        "data.process_batch", {"handler": "test.collect", "file": name, "errorThreshold": 0.5}
    )

    csv_done = wait_status(from_url.id, "completed", timeout=60)
    jsonl_done = wait_status(from_file.id, "completed", timeout=60)
    default_storage.delete(name)
    assert (csv_done.result["succeeded"], csv_done.result["failed"]) == (2, 1)
    assert "invalid literal" in csv_done.result["errors"][0]["error"]
    assert stored("csv") == [1, 2]
    assert jsonl_done.result["errors"][0]["position"] == 1
    assert "invalid JSON" in jsonl_done.result["errors"][0]["error"]
    assert stored("jsonl") == [7, 8]


def test_an_unknown_handler_or_two_sources_are_refused_when_scheduling(db):
    with pytest.raises(InvalidTaskRequest, match="no data handler named 'nope'"):
        schedule("data.process_batch", {"handler": "nope", "items": []})
    with pytest.raises(InvalidTaskRequest, match="exactly one of items, file or url"):
        schedule("data.process_batch", {"handler": "test.collect", "items": [], "file": "a.csv"})


@pytest.mark.slow
def test_a_batch_resumes_after_kill_9_without_redoing_a_committed_chunk(e2e):
    items = [{"n": i, "label": "kill-1", "sleep": 0.04} for i in range(200)]
    task = schedule(
        "data.process_batch", {"handler": "test.collect", "items": items, "chunkSize": 10}
    )
    checkpoint = wait_for(
        lambda: BatchCheckpoint.objects.filter(task_id=task.id, chunks_done__gte=5).first(),
        timeout=30,
        message="five committed chunks",
    )
    killed_after = checkpoint.chunks_done
    worker_pid = int(Task.objects.get(id=task.id).worker_id.split(":")[1])

    os.kill(worker_pid, signal.SIGKILL)  # the worker process running the batch, mid-chunk
    e2e.start_worker()  # keep the shared stack at full strength for the tests after this one

    done = wait_status(task.id, "completed", timeout=90)
    assert done.attempt == 2 and done.result["resumed_from_chunk"] >= killed_after
    assert stored("kill-1") == list(range(200))  # each item committed exactly once, in order
    chunks = list(BatchChunk.objects.filter(checkpoint__task_id=task.id).order_by("index"))
    assert [c.index for c in chunks] == list(range(20))
    assert chunks[0].attempt == 1 and chunks[-1].attempt == 2
    assert done.result["errors"] == []
