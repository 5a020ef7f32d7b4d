"""/api/task-queue/* as a BullMQ client speaks it: job options with BullMQ's meaning, the job
JSON with BullMQ's fields, dead letters and job removal over REST, the task-queue document's
per-queue retry defaults and its example payloads (issue 21, item 1)."""

import datetime as dt

import pytest
from django.utils import timezone

from taskhub.builtins.images import ProcessImage, Transformation, apply
from taskhub.builtins.mail import SendEmail, build_message
from taskhub.builtins.models import AnalyticsEvent
from taskhub.builtins.queue_api import definition_for
from taskhub.engine.enqueue import schedule
from taskhub.models import DeadLetter, OperatorAction, Task, TaskStatus

pytestmark = pytest.mark.django_db

EMAIL = {"to": "ada@example.com", "subject": "Welcome", "template": "welcome", "context": {}}
IMAGE = {"url": "https://example.com/a.png", "transformations": []}
EVENT = {"contractAddress": "0x" + "ab" * 20, "eventName": "Transfer", "parameters": {}}


def post(client, kind, body):
    return client.post(f"/api/task-queue/{kind}", body, format="json")


def job_of(client, response):
    data = response.json()
    return client.get(f"/api/task-queue/{data['queueName']}/jobs/{data['jobId']}").json()


# --- the BullMQ-shaped client ----------------------------------------------------------------


def test_a_bullmq_shaped_client_adds_jobs_and_reads_them_back_as_bullmq_jobs(operator):
    """Each call as ``queue.add(name, data, opts)`` sends it: the document's payloads
    verbatim, options in BullMQ's units, read back with BullMQ's Job fields."""
    calls = [
        (
            "email",
            "send-welcome-email",
            {
                "to": "user@example.com",
                "subject": "Welcome to Gatherraa!",
                "template": "welcome-email.hbs",
                "context": {"name": "John Doe"},
            },
            {
                "priority": 1,
                "delay": 5000,
                "attempts": 3,
                "backoff": {"type": "exponential", "delay": 2000},
                "removeOnComplete": True,
                "removeOnFail": False,
            },
        ),
        (
            "image-processing",
            "process-image",
            {
                "url": "https://example.com/image.jpg",
                "transformations": [
                    {"type": "resize", "options": {"width": 800, "height": 600, "fit": "cover"}},
                    {"type": "webp", "options": {"quality": 80}},
                ],
            },
            {"priority": 5, "attempts": 3, "backoff": {"type": "exponential", "delay": 2000}},
        ),
        (
            "blockchain-event",
            "blockchain-event",
            {
                "contractAddress": "0x742d35cc6634c0532925a3b844bc454e4438f44e",
                "eventName": "Transfer",
                "parameters": {"from": "0x1", "to": "0x2", "value": "1000"},
                "action": "process-transfer",
            },
            {"attempts": 5, "backoff": {"type": "exponential", "delay": 3000}, "jobId": "tx-0xabc"},
        ),
        (
            "analytics",
            "track-event",
            {"event": "user_signup", "userId": "u-1", "properties": {"plan": "pro"}},
            {"attempts": 2, "backoff": {"type": "exponential", "delay": 1000}, "delay": 250},
        ),
    ]
    for kind, name, data, opts in calls:
        response = post(operator, kind, {"name": name, "data": data, "opts": opts})
        assert response.status_code == 201, response.json()
        assert set(response.json()) == {"success", "jobId", "queueName", "timestamp"}
        job = job_of(operator, response)
        assert job["data"] == data
        assert job["delay"] == opts.get("delay", 0) == job["opts"]["delay"]
        assert job["opts"]["attempts"] == opts["attempts"] == job["maxAttempts"]
        assert job["opts"]["backoff"] == opts["backoff"]
        assert job["opts"]["priority"] == opts.get("priority", 0)
        assert job["attemptsMade"] == 0 and job["progress"] == 0
        assert job["returnvalue"] is None and job["failedReason"] is None
        assert job["processedOn"] is None and job["finishedOn"] is None
        assert isinstance(job["timestamp"], int)
    email = Task.objects.get(name="email.send")
    assert email.priority == 10  # BullMQ's 1, the highest: taskhub's critical
    assert (
        dt.timedelta(seconds=4.9)
        < email.scheduled_at - email.created_at
        < dt.timedelta(seconds=5.1)
    )
    blockchain = Task.objects.get(name="blockchain.handle_event")
    assert job_of(
        operator, post(operator, "blockchain-event", {"data": calls[2][2], "opts": calls[2][3]})
    )["id"] == str(blockchain.id)  # the same jobId again: the same job
    assert Task.objects.filter(name="blockchain.handle_event").count() == 1


# --- options ---------------------------------------------------------------------------------


def test_delay_is_in_milliseconds_in_both_shapes(operator):
    flat = post(operator, "email", {**EMAIL, "delay": 5000})
    wrapped = post(operator, "email", {"data": EMAIL, "opts": {"delay": 1500}})
    for response, seconds in ((flat, 5), (wrapped, 1.5)):
        task = Task.objects.get(id=response.json()["jobId"])
        wait = (task.scheduled_at - task.created_at).total_seconds()
        assert abs(wait - seconds) < 0.1  # not 5000 s (83 minutes)
    assert job_of(operator, flat)["delay"] == 5000


@pytest.mark.parametrize(
    "priority,stored,shown",
    [(1, 10, 1), (6, 5, 6), (11, 0, 0), (16, -5, 16), (0, 0, 0), (2_097_151, -100, 111)]
    + [("high", 5, 6), ("LOW", -5, 16)],
)
def test_priority_is_bullmqs_number_one_the_highest_or_a_taskhub_name(
    operator, priority, stored, shown
):
    response = post(operator, "email", {**EMAIL, "priority": priority})
    assert response.status_code == 201
    assert Task.objects.get(id=response.json()["jobId"]).priority == stored
    assert job_of(operator, response)["opts"]["priority"] == shown


def test_attempts_set_the_jobs_budget_and_a_backoff_equal_to_the_queues_is_accepted(operator):
    response = post(
        operator,
        "email",
        {**EMAIL, "attempts": 7, "backoff": {"type": "exponential", "delay": 2000}},
    )
    assert response.status_code == 201
    assert Task.objects.get(id=response.json()["jobId"]).max_attempts == 7


def test_a_backoff_other_than_the_queues_is_refused_saying_what_the_queue_does(operator):
    for backoff in ({"type": "fixed", "delay": 2000}, {"type": "exponential", "delay": 500}, 2000):
        response = post(operator, "email", {**EMAIL, "backoff": backoff})
        assert response.status_code == 400
        assert "exponential from 2000 ms" in response.json()["errors"]["backoff"][0]
    assert not Task.objects.exists()


def test_job_id_and_deduplication_keep_one_job_per_id_within_a_queue(operator):
    first = post(operator, "email", {**EMAIL, "jobId": "welcome-42"})
    again = post(operator, "email", {"data": EMAIL, "opts": {"jobId": "welcome-42"}})
    assert first.json()["jobId"] == again.json()["jobId"]
    assert job_of(operator, first)["opts"]["jobId"] == "welcome-42"
    # the older deduplicationKey and deduplication: {id} are the same guard
    a = post(operator, "email", {**EMAIL, "deduplicationKey": "digest"})
    b = post(operator, "email", {"data": EMAIL, "opts": {"deduplication": {"id": "digest"}}})
    assert a.json()["jobId"] == b.json()["jobId"]
    assert job_of(operator, a)["opts"]["deduplication"] == {"id": "digest"}
    assert "deduplicationKey" not in Task.objects.get(id=a.json()["jobId"]).payload
    # another queue's same id is another job, as BullMQ's ids are per queue
    other = post(operator, "analytics", {"event": "x", "jobId": "welcome-42"})
    assert other.json()["jobId"] != first.json()["jobId"]
    assert Task.objects.count() == 3


def test_a_job_id_keeps_guarding_after_the_job_completed_as_bullmqs_does(operator):
    first = post(operator, "email", {**EMAIL, "jobId": "once"}).json()["jobId"]
    Task.objects.filter(id=first).update(status=TaskStatus.COMPLETED, completed_at=timezone.now())
    assert post(operator, "email", {**EMAIL, "jobId": "once"}).json()["jobId"] == first
    assert Task.objects.count() == 1


def test_a_deduplication_ttl_keeps_guarding_after_the_job_finished(operator):
    body = {"data": EMAIL, "opts": {"deduplication": {"id": "d", "ttl": 60_000}}}
    first = post(operator, "email", body).json()["jobId"]
    Task.objects.filter(id=first).update(status=TaskStatus.COMPLETED, completed_at=timezone.now())
    assert post(operator, "email", body).json()["jobId"] == first
    no_ttl = {"data": EMAIL, "opts": {"deduplication": {"id": "e"}}}
    done = post(operator, "email", no_ttl).json()["jobId"]
    Task.objects.filter(id=done).update(status=TaskStatus.COMPLETED, completed_at=timezone.now())
    assert post(operator, "email", no_ttl).json()["jobId"] != done


@pytest.mark.parametrize(
    "value", [True, False, 100, 0, {"age": 3600}, {"age": 3600, "count": 1000}]
)
def test_remove_on_complete_and_fail_are_accepted_in_bullmqs_forms(operator, value):
    response = post(operator, "email", {**EMAIL, "removeOnComplete": value, "removeOnFail": value})
    assert response.status_code == 201
    assert set(Task.objects.get(id=response.json()["jobId"]).payload) == set(EMAIL)


def test_unknown_and_unsupported_options_are_refused_by_name(operator):
    response = post(operator, "email", {"data": EMAIL, "opts": {"lifo": True, "colour": "red"}})
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and set(body["errors"]) == {"colour", "lifo"}
    assert "last-in-first-out" in body["errors"]["lifo"][0]
    flat = post(operator, "email", {**EMAIL, "repeat": {"every": 1000}})
    assert flat.status_code == 400 and "/api/schedules" in flat.json()["errors"]["repeat"][0]
    # a misspelt option in the flat shape is not stored as payload either
    typo = post(operator, "email", {**EMAIL, "dedupKey": "x"})
    assert typo.status_code == 400 and "dedupKey" in typo.json()["message"]
    assert not Task.objects.exists()


BAD = [
    ({**EMAIL, "delay": -1}, "delay"),
    ({**EMAIL, "delay": "5000"}, "delay"),
    ({**EMAIL, "delay": 1e20}, "delay"),
    ({**EMAIL, "delay": True}, "delay"),
    ({**EMAIL, "attempts": 0}, "attempts"),
    ({**EMAIL, "attempts": 2.5}, "attempts"),
    ({**EMAIL, "priority": -1}, "priority"),
    ({**EMAIL, "priority": 2_097_152}, "priority"),
    ({**EMAIL, "priority": 1.5}, "priority"),
    ({**EMAIL, "priority": "urgent"}, "priority"),
    ({**EMAIL, "backoff": {"type": "custom", "delay": 1}}, "backoff"),
    ({**EMAIL, "backoff": {"type": "exponential", "delay": 2000, "jitter": 0.5}}, "backoff"),
    ({**EMAIL, "jobId": ""}, "jobId"),
    ({**EMAIL, "jobId": 5}, "jobId"),
    ({**EMAIL, "jobId": "a", "deduplicationKey": "b"}, "jobId"),
    ({**EMAIL, "deduplication": "x"}, "deduplication"),
    ({**EMAIL, "deduplication": {"id": "x", "extend": True}}, "deduplication.extend"),
    ({**EMAIL, "deduplication": {"id": "x"}, "deduplicationKey": "y"}, "deduplicationKey"),
    ({**EMAIL, "deduplication": {"id": "x", "ttl": 0}}, "deduplication.ttl"),
    ({**EMAIL, "removeOnComplete": "yes"}, "removeOnComplete"),
    ({**EMAIL, "removeOnFail": {"age": -1}}, "removeOnFail.age"),
    ({**EMAIL, "timeout": 0}, "timeout"),
    ({"data": [EMAIL]}, "data"),
    ({"data": EMAIL, "opts": [1]}, "opts"),
    ({"name": 5, "data": EMAIL}, "name"),
    ({**EMAIL, "template": "welcome-email.pdf"}, "template"),
    ({"data": {**EMAIL, "template": "nope.hbs"}}, "template"),
]


@pytest.mark.parametrize("body,field", BAD)
def test_every_bad_option_is_a_400_naming_it_and_writes_nothing(operator, body, field):
    response = post(operator, "email", body)
    assert response.status_code == 400, response.json()
    data = response.json()
    assert data["success"] is False and field in data["errors"], data
    assert data["message"]
    assert not Task.objects.exists() and not OperatorAction.objects.exists()


def test_a_body_that_is_not_an_object_is_a_400(operator):
    assert post(operator, "email", [EMAIL]).status_code == 400
    assert not Task.objects.exists()


# --- the job JSON ----------------------------------------------------------------------------


def test_job_json_keeps_the_old_fields_and_adds_bullmqs(viewer):
    task = schedule("email.send", EMAIL, delay=2)
    now = timezone.now()
    Task.objects.filter(id=task.id).update(
        status=TaskStatus.COMPLETED, attempt=1, started_at=now, completed_at=now, result={"a": 1}
    )
    job = viewer.get(f"/api/task-queue/email/jobs/{task.id}").json()
    old = {"id", "name", "queueName", "status", "progress", "attempts", "maxAttempts"}
    old |= {"priority", "data", "result", "failedReason", "timestamp", "processedOn", "finishedOn"}
    assert old | {"opts", "delay", "attemptsMade", "returnvalue"} == set(job)
    assert (job["attemptsMade"], job["returnvalue"], job["delay"]) == (1, {"a": 1}, 2000)
    assert job["opts"] == {
        "attempts": 3,
        "delay": 2000,
        "priority": 0,
        "backoff": {"type": "exponential", "delay": 2000},
        "timeout": round(task.timeout * 1000),
    }
    assert viewer.get(f"/api/task-queue/status/email/{task.id}").json()["job"] == job
    assert viewer.get(f"/api/task-queue/default/jobs/{task.id}").status_code == 404
    assert viewer.get("/api/task-queue/email/jobs/not-a-uuid").status_code == 404


# --- removing a job --------------------------------------------------------------------------


def test_delete_cancels_a_waiting_or_delayed_job(operator):
    waiting = schedule("email.send", EMAIL)
    delayed = schedule("email.send", EMAIL, delay=600)
    for task in (waiting, delayed):
        response = operator.delete(f"/api/task-queue/email/jobs/{task.id}")
        assert response.status_code == 200 and response.json()["success"] is True
        assert Task.objects.get(id=task.id).status == TaskStatus.CANCELLED
    assert OperatorAction.objects.filter(action="task.remove").count() == 2


def test_delete_of_a_running_job_is_a_409_and_changes_nothing(operator):
    task = schedule("email.send", EMAIL)
    Task.objects.filter(id=task.id).update(status=TaskStatus.RUNNING, attempt=1)
    response = operator.delete(f"/api/task-queue/email/jobs/{task.id}")
    assert response.status_code == 409 and response.json()["success"] is False
    assert "running" in response.json()["message"]
    task.refresh_from_db()
    assert (task.status, task.cancel_requested) == (TaskStatus.RUNNING, False)


def test_delete_of_a_finished_job_deletes_it_for_an_admin_only(operator, admin):
    task = schedule("email.send", EMAIL)
    Task.objects.filter(id=task.id).update(status=TaskStatus.COMPLETED)
    assert operator.delete(f"/api/task-queue/email/jobs/{task.id}").status_code == 403
    assert admin.delete(f"/api/task-queue/email/jobs/{task.id}").status_code == 200
    assert not Task.objects.filter(id=task.id).exists()
    assert admin.delete(f"/api/task-queue/email/jobs/{task.id}").status_code == 404


# --- dead letters ----------------------------------------------------------------------------


def dead_letter(queue_task="email.send", payload=EMAIL) -> DeadLetter:
    task = schedule(queue_task, payload)
    now = timezone.now()
    Task.objects.filter(id=task.id).update(
        status=TaskStatus.FAILED, attempt=3, completed_at=now, error="SMTPError: 550"
    )
    return DeadLetter.objects.create(
        task_id=task.id,
        task_name=task.name,
        queue=task.queue,
        payload=payload,
        error="SMTPError: 550",
        traceback="Traceback …",
        attempts=3,
        created_at=now,
    )


def test_dead_letters_are_listed_newest_first_as_failed_jobs(viewer):
    letters = [dead_letter() for _ in range(3)]
    dead_letter("analytics.track", {"event": "x"})  # another queue's
    data = viewer.get("/api/task-queue/email/dead-letters?start=0&end=1").json()
    assert data["queueName"] == "email" and data["count"] == 3
    assert [j["id"] for j in data["jobs"]] == [letters[2].id, letters[1].id]
    job = data["jobs"][0]
    assert job["jobId"] == str(letters[2].task_id) and job["failedReason"] == "SMTPError: 550"
    assert (job["attemptsMade"], job["stacktrace"], job["name"]) == (
        3,
        ["Traceback …"],
        "email.send",
    )
    assert viewer.get("/api/task-queue/nope/dead-letters").status_code == 404
    assert viewer.get("/api/task-queue/email/dead-letters?end=-1").status_code == 400


def test_a_dead_letter_is_retried_by_an_operator(viewer, operator):
    letter = dead_letter()
    url = f"/api/task-queue/email/dead-letters/{letter.id}/retry"
    assert viewer.post(url).status_code == 403
    response = operator.post(url)
    assert response.status_code == 200 and response.json()["success"] is True
    assert Task.objects.get(id=letter.task_id).status == TaskStatus.PENDING
    assert not DeadLetter.objects.filter(id=letter.id).exists()
    assert operator.post(url).status_code == 404  # resolved: gone
    assert OperatorAction.objects.filter(action="dead_letter.retry").count() == 1


def test_a_dead_letter_is_removed_by_an_admin_and_the_failed_job_kept(operator, admin):
    letter = dead_letter()
    url = f"/api/task-queue/email/dead-letters/{letter.id}"
    assert operator.delete(url).status_code == 403
    assert admin.delete(url).json()["success"] is True
    assert not DeadLetter.objects.filter(id=letter.id).exists()
    assert Task.objects.get(id=letter.task_id).status == TaskStatus.FAILED


@pytest.mark.parametrize("letter_id", ["abc", "-1", "99999999999999999999999", "0"])
def test_an_unknown_dead_letter_is_a_404(admin, letter_id):
    dead_letter()
    assert admin.delete(f"/api/task-queue/email/dead-letters/{letter_id}").status_code == 404
    retry = admin.post(f"/api/task-queue/email/dead-letters/{letter_id}/retry")
    assert retry.status_code == 404 and retry.json()["success"] is False


def test_a_dead_letter_is_not_found_under_another_queue(admin):
    letter = dead_letter()
    assert (
        admin.post(f"/api/task-queue/analytics/dead-letters/{letter.id}/retry").status_code == 404
    )
    assert DeadLetter.objects.filter(id=letter.id).exists()


# --- per-queue retry defaults ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,attempts,delays",
    [
        ("email", 3, [2, 4]),
        ("image-processing", 3, [2, 4]),
        ("blockchain-event", 5, [3, 6, 12, 24]),
        ("analytics", 2, [1]),
    ],
)
def test_each_queue_retries_as_the_document_says(kind, attempts, delays):
    definition = definition_for(kind)
    assert definition.effective_max_attempts == attempts
    policy = definition.retry_policy
    assert [policy.delay(n) for n in range(1, attempts)] == delays


# --- the document's example payloads ---------------------------------------------------------


def test_a_template_named_with_its_extension_is_the_same_template():
    for name in ("welcome-email.hbs", "welcome-email", "welcome-email.HTML", "welcome.hbs"):
        SendEmail.model_validate({**EMAIL, "template": name})
    payload = SendEmail.model_validate(
        {**EMAIL, "template": "welcome-email.hbs", "context": {"name": "John Doe"}}
    )
    assert payload.template == "welcome-email"
    message = build_message(payload)
    assert "Hello John Doe" in message.body
    assert "Welcome, John Doe!" in message.alternatives[0][0]


def test_an_image_format_step_sets_the_output_format():
    payload = ProcessImage.model_validate(
        {**IMAGE, "transformations": [{"type": "webp", "options": {"quality": 70}}]}
    )
    assert (payload.output_format, payload.quality) == ("webp", 70)
    png = ProcessImage.model_validate({**IMAGE, "transformations": [{"type": "png"}]})
    assert png.output_format == "png"
    for bad in (
        {**IMAGE, "outputFormat": "png", "transformations": [{"type": "webp"}]},
        {**IMAGE, "transformations": [{"type": "webp"}, {"type": "jpeg"}]},
        {**IMAGE, "transformations": [{"type": "webp", "options": {"quality": 0}}]},
        {**IMAGE, "transformations": [{"type": "webp", "options": {"lossless": True}}]},
        {**IMAGE, "transformations": [{"type": "resize", "options": {"width": 9, "fit": "x"}}]},
        {**IMAGE, "transformations": [{"type": "resize", "options": {"width": 9, "kernel": 1}}]},
    ):
        with pytest.raises(ValueError):
            ProcessImage.model_validate(bad)


@pytest.mark.parametrize(
    "fit,size",
    [
        ("fill", (100, 100)),
        ("cover", (100, 100)),
        ("contain", (100, 100)),
        ("inside", (100, 50)),
        ("outside", (200, 100)),
    ],
)
def test_resize_fit_means_what_sharps_does(fit, size):
    from PIL import Image

    image = Image.new("RGB", (400, 200), (255, 0, 0))  # 2:1
    step = Transformation(type="resize", options={"width": 100, "height": 100, "fit": fit})
    out = apply(image, step)
    assert out.size == size
    if fit == "contain":  # letterboxed: bars above and below, the image in the middle
        assert out.getpixel((50, 5)) == (0, 0, 0) and out.getpixel((50, 50)) == (255, 0, 0)
    if fit == "cover":  # cropped to the centre: red throughout
        assert out.getpixel((0, 0)) == (255, 0, 0)


def test_blockchain_action_is_accepted_and_kept(operator):
    response = post(operator, "blockchain-event", {**EVENT, "action": "process-transfer"})
    assert response.status_code == 201
    assert Task.objects.get().payload["action"] == "process-transfer"
    assert post(operator, "blockchain-event", {**EVENT, "action": ""}).status_code == 400


def test_analytics_records_each_event_once(operator, taskhub_manual):
    for _ in range(2):
        post(operator, "analytics", {"event": "signup", "userId": 7, "properties": {"a": 1}})
    late = post(operator, "analytics", {"event": "signup", "timestamp": "2020-01-01T00:00:00Z"})
    assert late.status_code == 201, late.json()
    taskhub_manual.drain()
    tasks = list(Task.objects.filter(name="analytics.track").order_by("created_at"))
    assert [t.status for t in tasks] == [TaskStatus.COMPLETED] * 3
    assert [t.result["count_today"] for t in tasks] == [1, 2, 1]
    assert tasks[2].result["day"] == "2020-01-01"
    rows = AnalyticsEvent.objects.order_by("id")
    assert [(r.event, r.user_id, r.properties) for r in rows][:2] == [("signup", "7", {"a": 1})] * 2
    assert (
        post(operator, "analytics", {"event": "x", "timestamp": "2020-01-01T00:00"}).status_code
        == 400
    )
    assert post(operator, "analytics", {"event": ""}).status_code == 400
