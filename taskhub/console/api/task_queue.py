"""The established task-queue API (``/api/task-queue/*``). Paths and response shapes are kept
exactly as existing clients use them; behind them are the same services as everywhere else."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from ...builtins.queue_api import definition_for
from ...definitions.payloads import redact
from ...definitions.registry import all_definitions, declared_queues
from ...engine.enqueue import schedule
from ...errors import InvalidTransition, TaskNotFound
from ...models import DeadLetter, Task, TaskStatus
from .. import health, services
from ..audit import audited
from ..roles import has_role
from .bullmq import OPTIONS, bullmq_opts, delay_ms, split_request
from .errors import QueueNotFound
from .permissions import ADMIN, OPERATOR, VIEWER, RolePermission
from .schema import error_serializer
from .views import TaskhubAPIView

MAX_FAILED_PAGE = 1000
HEALTH_STATUSES = [health.OK, health.DEGRADED, health.DOWN]


def _ms(moment) -> int | None:
    return int(moment.timestamp() * 1000) if moment else None


#: statuses whose current attempt has been handed out but has not ended
_IN_FLIGHT = (TaskStatus.QUEUED, TaskStatus.RUNNING)


def job_json(task: Task) -> dict:
    """A task in the shape task-queue clients know as a job: the fields this API always had
    (``attempts``, ``maxAttempts``, ``priority`` and ``result`` in taskhub's terms) and BullMQ's
    Job fields beside them (``opts``, ``delay`` in ms, ``attemptsMade``, ``returnvalue``)."""
    definition = all_definitions().get(task.name)
    made = task.attempt - 1 if task.status in _IN_FLIGHT else task.attempt
    return {
        "id": str(task.id),
        "name": task.name,
        "queueName": task.queue,
        "status": task.status,
        "progress": task.progress,
        "attempts": task.attempt,
        "maxAttempts": task.max_attempts,
        "priority": task.priority,
        "data": redact(definition, task.payload),
        "result": task.result,
        "failedReason": task.error or None,
        "timestamp": _ms(task.created_at),
        "processedOn": _ms(task.started_at),
        "finishedOn": _ms(task.completed_at),
        "opts": bullmq_opts(task, definition),
        "delay": delay_ms(task),
        "attemptsMade": max(0, made),
        "returnvalue": task.result,
    }


def _queue_or_404(name: str) -> str:
    if name not in declared_queues():
        raise QueueNotFound(f"unknown queue {name!r}")
    return name


def _done(message: str) -> Response:
    return Response({"success": True, "message": message, "timestamp": timezone.now()})


class TaskQueueView(TaskhubAPIView):
    permission_classes = [RolePermission]
    error_envelope = {"success": False}


class JobSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    queueName = serializers.CharField()
    status = serializers.CharField()
    progress = serializers.IntegerField()
    attempts = serializers.IntegerField()
    maxAttempts = serializers.IntegerField()
    priority = serializers.IntegerField()
    data = serializers.JSONField()
    result = serializers.JSONField(allow_null=True)
    failedReason = serializers.CharField(allow_null=True)
    timestamp = serializers.IntegerField(help_text="Created, Unix milliseconds.")
    processedOn = serializers.IntegerField(allow_null=True)
    finishedOn = serializers.IntegerField(allow_null=True)
    opts = serializers.DictField(
        help_text="BullMQ's JobsOptions as they apply: attempts, delay (ms), priority (BullMQ's "
        "number, 0 = none), backoff, timeout (ms), jobId or deduplication."
    )
    delay = serializers.IntegerField(help_text="Milliseconds after creation it may start.")
    attemptsMade = serializers.IntegerField()
    returnvalue = serializers.JSONField(allow_null=True)


_Accepted = inline_serializer(
    "JobAccepted",
    {
        "success": serializers.BooleanField(),
        "jobId": serializers.UUIDField(),
        "queueName": serializers.CharField(),
        "timestamp": serializers.DateTimeField(),
    },
)
_Done = inline_serializer(
    "ActionDone",
    {
        "success": serializers.BooleanField(),
        "message": serializers.CharField(),
        "timestamp": serializers.DateTimeField(),
    },
)
# Boundary errors answered before the view (a NUL in the URL) carry no envelope.
_Failure = error_serializer({"success": False})


class EnqueueJob(TaskQueueView):
    """``POST /api/task-queue/<kind>``: the body is the task's payload with BullMQ's job options
    beside it, or ``{name, data, opts}`` as ``queue.add(name, data, opts)`` takes them
    (console/api/bullmq.py); field errors are named as the client sent them."""

    roles = {"POST": OPERATOR}
    kind = ""  # set per URL: email, image-processing, blockchain-event, notification

    @staticmethod
    def rename_error_fields(errors: dict) -> dict:
        return {k.removeprefix("payload."): v for k, v in errors.items()}

    def post(self, request):
        definition = definition_for(self.kind)
        job = split_request(definition, request.data)
        with audited(
            request.user, f"task-queue.{self.kind}", source="api", target_type="task"
        ) as extra:
            task = schedule(definition, job.payload, **job.options)
            extra["target_id"] = task.id
        body = {
            "success": True,
            "jobId": str(task.id),
            "queueName": task.queue,
            "timestamp": task.created_at,
        }
        return Response(body, status=status.HTTP_201_CREATED)


def _inline_defs(schema: dict) -> dict:
    """Pydantic's JSON schema in OpenAPI 3.0's dialect: ``$defs`` inlined, nulls as nullable."""
    defs = schema.pop("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            node = {k: resolve(v) for k, v in node.items()}
            # Optional fields: JSON Schema's {"type": "null"} branch is OpenAPI 3.0's nullable.
            for key in ("anyOf", "oneOf"):
                branches = node.get(key)
                if branches and {"type": "null"} in branches:
                    rest = [b for b in branches if b != {"type": "null"}]
                    node.pop(key)
                    node.update(rest[0] if len(rest) == 1 else {key: rest})
                    node["nullable"] = True
            return node
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


_KEEP_JOBS = {
    "oneOf": [{"type": "boolean"}, {"type": "integer", "minimum": 0}, {"type": "object"}],
    "description": "accepted; finished jobs are kept as history (docs/api.md)",
}
#: BullMQ's job options as the body may carry them beside the data (docs/api.md)
_OPTION_SCHEMA = {
    "priority": {
        "oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}],
        "description": "BullMQ's number: 1 is the highest, 0 none; or critical, high, normal, "
        "low, deferred",
    },
    "delay": {"type": "number", "minimum": 0, "description": "milliseconds before it may start"},
    "attempts": {"type": "integer", "minimum": 1, "maximum": 100},
    "backoff": {
        "oneOf": [{"type": "number"}, {"type": "object"}],
        "description": "{type: fixed|exponential, delay: ms}: must equal the queue's own",
    },
    "timeout": {"type": "number", "description": "milliseconds an attempt may run"},
    "jobId": {"type": "string", "description": "a second add with the same jobId returns the job"},
    "deduplication": {"type": "object", "description": "{id, ttl (ms)}"},
    "deduplicationKey": {"type": "string"},
    "removeOnComplete": _KEEP_JOBS,
    "removeOnFail": _KEEP_JOBS,
}
assert set(_OPTION_SCHEMA) == OPTIONS


def enqueue_view(kind: str):
    """The view for one kind, with its schema documented from the task's pydantic model."""
    definition = definition_for(kind)
    schema = _inline_defs(definition.schema.model_json_schema())
    schema.setdefault("properties", {}).update(_OPTION_SCHEMA)

    def post(self, request):
        return EnqueueJob.post(self, request)

    view = type(f"Enqueue{kind.title().replace('-', '')}", (EnqueueJob,), {"kind": kind})
    view.post = extend_schema(
        summary=f"Schedule a {definition.name} job on the {definition.queue} queue",
        description=(
            "The body is the job's data with BullMQ's job options beside it (below), or "
            '`queue.add(name, data, opts)`\'s parts: `{"name": …, "data": {…}, "opts": {…}}`. '
            "`delay`, `backoff.delay` and `timeout` are milliseconds; a key that is neither a "
            "field of the task nor a supported option is a 400 naming it."
        ),
        request={"application/json": schema},
        responses={201: _Accepted, 400: _Failure},
        operation_id=f"task_queue_enqueue_{kind.replace('-', '_')}",
    )(post)
    return view.as_view()


class JobStatus(TaskQueueView):
    roles = {"GET": VIEWER}
    error_envelope = {"found": False}

    @extend_schema(
        summary="A job's status",
        responses={
            200: inline_serializer(
                "JobStatus", {"found": serializers.BooleanField(), "job": JobSerializer()}
            ),
            404: error_serializer({"found": False}),
        },
    )
    def get(self, request, queue_name, job_id):
        task = services.get_task(job_id)
        if task.queue != queue_name:
            return Response({"found": False}, status=status.HTTP_404_NOT_FOUND)
        return Response({"found": True, "job": job_json(task)})


def _stats_row(row: dict) -> dict:
    return {
        "queueName": row["queue"],
        "active": row.get("running", 0),
        "waiting": row.get("waiting", 0) + row.get("queued", 0),
        "completed": row.get("completed", 0),
        "failed": row.get("failed", 0),
        "delayed": row.get("delayed", 0),
        "paused": row.get("paused", False),
    }


class QueueStats(TaskQueueView):
    roles = {"GET": VIEWER}
    error_codes = {"GET": [404]}  # ?queueName= names no queue

    @extend_schema(
        summary="Per-queue job counts",
        parameters=[
            inline_serializer("StatsQuery", {"queueName": serializers.CharField(required=False)})
        ],
        responses=inline_serializer(
            "QueueStatsList",
            {
                "stats": inline_serializer(
                    "QueueStatsRow",
                    {
                        "queueName": serializers.CharField(),
                        "active": serializers.IntegerField(),
                        "waiting": serializers.IntegerField(),
                        "completed": serializers.IntegerField(),
                        "failed": serializers.IntegerField(),
                        "delayed": serializers.IntegerField(),
                        "paused": serializers.BooleanField(),
                    },
                    many=True,
                )
            },
        ),
    )
    def get(self, request):
        wanted = request.query_params.get("queueName")
        if wanted is not None:
            _queue_or_404(wanted)
        rows = [_stats_row(r) for r in services.queue_stats()]
        if wanted is not None:
            rows = [r for r in rows if r["queueName"] == wanted]
        return Response({"stats": rows})


class _FailedRange(serializers.Serializer):
    start = serializers.IntegerField(required=False, default=0, min_value=0)
    end = serializers.IntegerField(
        required=False, default=10, min_value=0, help_text="Inclusive index of the last job."
    )

    def validate(self, attrs):
        if attrs["end"] < attrs["start"]:
            raise serializers.ValidationError({"end": ["Must not be less than start."]})
        if attrs["end"] - attrs["start"] + 1 > MAX_FAILED_PAGE:
            message = f"At most {MAX_FAILED_PAGE} jobs per page."
            raise serializers.ValidationError({"end": [message]})
        return attrs


class FailedJobs(TaskQueueView):
    roles = {"GET": VIEWER}

    @extend_schema(
        summary="Failed jobs of a queue, newest first",
        parameters=[_FailedRange],
        responses=inline_serializer(
            "FailedJobs",
            {
                "queueName": serializers.CharField(),
                "count": serializers.IntegerField(),
                "jobs": JobSerializer(many=True),
            },
        ),
    )
    def get(self, request, queue_name):
        _queue_or_404(queue_name)
        page = _FailedRange(data=request.query_params)
        page.is_valid(raise_exception=True)
        start, end = page.validated_data["start"], page.validated_data["end"]
        failed = Task.objects.filter(queue=queue_name, status=TaskStatus.FAILED)
        jobs = [job_json(t) for t in failed.order_by("-created_at")[start : end + 1]]
        return Response({"queueName": queue_name, "count": failed.count(), "jobs": jobs})


_ACTION_SCHEMA = extend_schema(request=None, responses={200: _Done, 404: _Failure, 409: _Failure})


class PauseQueue(TaskQueueView):
    roles = {"POST": OPERATOR}

    @_ACTION_SCHEMA
    def post(self, request, queue_name):
        with audited(
            request.user,
            "queue.pause",
            source="api",
            target_type="queue",
            target_id=_queue_or_404(queue_name),
        ):
            services.pause_queue(queue_name)
        return _done(f"Queue {queue_name} paused")


class ResumeQueue(TaskQueueView):
    roles = {"POST": OPERATOR}

    @_ACTION_SCHEMA
    def post(self, request, queue_name):
        with audited(
            request.user,
            "queue.resume",
            source="api",
            target_type="queue",
            target_id=_queue_or_404(queue_name),
        ):
            services.resume_queue(queue_name)
        return _done(f"Queue {queue_name} resumed")


class ClearQueue(TaskQueueView):
    roles = {"POST": ADMIN}

    @_ACTION_SCHEMA
    def post(self, request, queue_name):
        with audited(
            request.user,
            "queue.clear",
            source="api",
            target_type="queue",
            target_id=_queue_or_404(queue_name),
            atomic=False,
        ) as extra:
            extra["cancelled"] = services.clear_queue(queue_name, actor=request.user.get_username())
        return _done(f"Queue {queue_name} cleared: {extra['cancelled']} waiting jobs cancelled")


def _job_in_queue(queue_name: str, job_id: str) -> Task:
    _queue_or_404(queue_name)
    task = services.get_task(job_id)
    if task.queue != queue_name:
        raise TaskNotFound(f"no job {job_id} in queue {queue_name}")
    return task


class RetryJob(TaskQueueView):
    roles = {"POST": OPERATOR}

    @_ACTION_SCHEMA
    def post(self, request, queue_name, job_id):
        with audited(
            request.user, "task.retry", source="api", target_type="task", target_id=job_id
        ):
            task = _job_in_queue(queue_name, job_id)
            services.retry_task(task.id, actor=request.user.get_username())
        return _done(f"Job {task.id} queued for retry")


class RemoveJob(TaskQueueView):
    roles = {"POST": ADMIN}

    @_ACTION_SCHEMA
    def post(self, request, queue_name, job_id):
        with audited(
            request.user, "task.delete", source="api", target_type="task", target_id=job_id
        ):
            task = _job_in_queue(queue_name, job_id)
            services.delete_task(task.id)
        return _done(f"Job {task.id} removed")


class Job(TaskQueueView):
    """``/api/task-queue/<queue>/jobs/<id>``: BullMQ's ``queue.getJob(id)`` (GET) and
    ``job.remove()`` (DELETE)."""

    roles = {"GET": VIEWER, "DELETE": OPERATOR}

    @extend_schema(summary="A job of a queue", responses={200: JobSerializer, 404: _Failure})
    def get(self, request, queue_name, job_id):
        return Response(job_json(_job_in_queue(queue_name, job_id)))

    @extend_schema(
        summary="Remove a job: a waiting or delayed one is cancelled, a finished one deleted",
        responses={200: _Done, 404: _Failure, 409: _Failure},
    )
    def delete(self, request, queue_name, job_id):
        with audited(
            request.user, "task.remove", source="api", target_type="task", target_id=job_id
        ) as extra:
            task = _job_in_queue(queue_name, job_id)
            actor = request.user.get_username()
            if task.status == TaskStatus.RUNNING:
                # BullMQ refuses to remove a locked (active) job; taskhub's cancel of a running
                # one is a request the handler may not honour at once, so it is its own action.
                raise InvalidTransition(
                    f"job {task.id} is running: cancel it (POST /api/tasks/{task.id}/cancel) "
                    "and remove it once it has stopped"
                )
            if task.status in services.WAITING_STATUSES:
                services.cancel_task(task.id, actor=actor)
                extra["outcome"] = "cancelled"
                message = f"Job {task.id} removed from the queue (cancelled)"
            elif not has_role(request.user, ADMIN):
                # Deleting history is the admin's, as POST …/remove/<id> and the console have it.
                raise PermissionDenied(f"Deleting a {task.status} job needs the {ADMIN} role.")
            else:
                services.delete_task(task.id)
                extra["outcome"] = "deleted"
                message = f"Job {task.id} removed"
        return _done(message)


def dead_letter_json(letter: DeadLetter) -> dict:
    """A dead letter as a failed job: BullMQ's fields, ``id`` being the dead letter's own."""
    return {
        "id": letter.id,
        "jobId": str(letter.task_id),
        "name": letter.task_name,
        "queueName": letter.queue,
        "data": redact(all_definitions().get(letter.task_name), letter.payload),
        "failedReason": letter.error,
        "stacktrace": [letter.traceback] if letter.traceback else [],
        "attemptsMade": letter.attempts,
        "timestamp": _ms(letter.created_at),
    }


class _DeadLetter(serializers.Serializer):
    id = serializers.IntegerField()
    jobId = serializers.UUIDField()
    name = serializers.CharField()
    queueName = serializers.CharField()
    data = serializers.JSONField()
    failedReason = serializers.CharField()
    stacktrace = serializers.ListField(child=serializers.CharField())
    attemptsMade = serializers.IntegerField()
    timestamp = serializers.IntegerField(help_text="Dead-lettered, Unix milliseconds.")


class DeadLetters(TaskQueueView):
    """``GET /api/task-queue/<queue>/dead-letters``: the jobs that ran out of attempts or failed
    permanently and wait for an operator, newest first (``start`` / ``end`` as getFailed)."""

    roles = {"GET": VIEWER}

    @extend_schema(
        summary="Dead letters of a queue, newest first",
        parameters=[_FailedRange],
        responses=inline_serializer(
            "DeadLetterJobs",
            {
                "queueName": serializers.CharField(),
                "count": serializers.IntegerField(),
                "jobs": _DeadLetter(many=True),
            },
        ),
    )
    def get(self, request, queue_name):
        _queue_or_404(queue_name)
        page = _FailedRange(data=request.query_params)
        page.is_valid(raise_exception=True)
        start, end = page.validated_data["start"], page.validated_data["end"]
        letters = DeadLetter.objects.filter(queue=queue_name)
        jobs = [
            dead_letter_json(d) for d in letters.order_by("-created_at", "-id")[start : end + 1]
        ]
        return Response({"queueName": queue_name, "count": letters.count(), "jobs": jobs})


def _letter_in_queue(queue_name: str, letter_id: str) -> DeadLetter:
    _queue_or_404(queue_name)
    letter = None
    if letter_id.isdigit() and len(letter_id) < 19:
        letter = DeadLetter.objects.filter(id=int(letter_id), queue=queue_name).first()
    if letter is None:
        raise TaskNotFound(f"no dead letter {letter_id} in queue {queue_name}")
    return letter


class DeadLetterRetry(TaskQueueView):
    """``POST /api/task-queue/<queue>/dead-letters/<id>/retry``: run the job again with a fresh
    budget; its dead letter is resolved (gone)."""

    roles = {"POST": OPERATOR}

    @_ACTION_SCHEMA
    def post(self, request, queue_name, letter_id):
        with audited(
            request.user,
            "dead_letter.retry",
            source="api",
            target_type="dead_letter",
            target_id=letter_id,
        ):
            letter = _letter_in_queue(queue_name, letter_id)
            task = services.retry_dead_letter(letter.id, actor=request.user.get_username())
        return _done(f"Job {task.id} queued for retry")


class DeadLetterRemove(TaskQueueView):
    """``DELETE /api/task-queue/<queue>/dead-letters/<id>``: dismiss a dead letter; the failed
    job stays in the history (``/failed``). An admin's, as in the console."""

    roles = {"DELETE": ADMIN}

    @_ACTION_SCHEMA
    def delete(self, request, queue_name, letter_id):
        with audited(
            request.user,
            "dead_letter.remove",
            source="api",
            target_type="dead_letter",
            target_id=letter_id,
        ):
            letter = _letter_in_queue(queue_name, letter_id)
            services.remove_dead_letter(letter.id)
        return _done(f"Dead letter {letter.id} of job {letter.task_id} removed")


def health_summary(report: dict) -> dict:
    queues = report["queues"]
    total = lambda field: sum(q.get(field) or 0 for q in queues)  # noqa: E731
    workers = next((c for c in report["checks"] if c["name"] == "workers"), {})
    return {
        "activeJobs": total("running"),
        "waitingJobs": total("waiting") + total("queued"),
        "delayedJobs": total("delayed"),
        "failedJobs": DeadLetter.objects.count() if queues else 0,
        "completedLastHour": total("completed_last_hour"),
        "failedLastHour": total("failed_last_hour"),
        "pausedQueues": [q["queue"] for q in queues if q["paused"]],
        "liveWorkers": workers.get("live", 0),
    }


class Health(TaskQueueView):
    roles = {"GET": VIEWER}
    error_envelope = None

    @extend_schema(
        summary="Health of the database, broker, workers, scheduler and queues",
        responses={
            code: inline_serializer(
                f"Health{code}",
                {
                    "status": serializers.ChoiceField(choices=HEALTH_STATUSES),
                    "timestamp": serializers.DateTimeField(),
                    "summary": serializers.DictField(),
                    "details": serializers.ListField(child=serializers.DictField()),
                },
            )
            for code in (200, 503)
        },
    )
    def get(self, request):
        report = health.report()
        body = {
            "status": report["status"],
            "timestamp": report["timestamp"],
            "summary": health_summary(report),
            "details": report["checks"],
        }
        return Response(body, status=health.http_status(report["status"]))
