"""Request validation and response shapes of the API (also what the OpenAPI schema shows)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ...definitions.payloads import redact
from ...definitions.registry import InternalTask, all_definitions, get_external_definition
from ...definitions.task_types import TaskType
from ...models import TaskStatus
from .. import search
from ..task_filters import filtered_tasks, selects_everything

MAX_BULK = 1000


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, so a typo (``paylod``) is an error, not silence."""

    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, Mapping) else []
        errors = {name: ["Unknown field."] for name in unknown}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, dict):
                raise
            raise serializers.ValidationError({**exc.detail, **errors}) from None
        if errors:
            raise serializers.ValidationError(errors)
        return value


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "integer"}], "example": "high"})
class PriorityField(serializers.Field):
    """A priority name (critical, high, normal, low, deferred) or a number from -100 to 100;
    checked by the scheduler, which knows the names."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, str | int):
            raise serializers.ValidationError("Must be a priority name or a whole number.")
        return data

    def to_representation(self, value):
        return value


class TaskRequestSerializer(StrictSerializer):
    task = serializers.CharField(max_length=200, help_text="Registered task name.")
    payload = serializers.JSONField(required=False, default=dict)
    priority = PriorityField(required=False, allow_null=True)
    delay = serializers.FloatField(required=False, min_value=0, max_value=366 * 86400)
    max_attempts = serializers.IntegerField(required=False, min_value=1, max_value=100)
    dedup_key = serializers.CharField(required=False, max_length=255)
    correlation_id = serializers.CharField(required=False, max_length=200)
    user_id = serializers.CharField(required=False, max_length=200)

    def validate_task(self, value: str) -> str:
        # Internal tasks are started by the application's own code only (payments, workflow
        # steps); an unknown name is left for the scheduler to report.
        if value in all_definitions():
            try:
                get_external_definition(value)
            except InternalTask as exc:
                raise serializers.ValidationError(str(exc)) from None
        return value


class BulkTaskRequestSerializer(StrictSerializer):
    tasks = TaskRequestSerializer(many=True, allow_empty=False, max_length=MAX_BULK)


class TaskEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    attempt = serializers.IntegerField()
    at = serializers.DateTimeField()
    data = serializers.JSONField()


class TaskLogSerializer(serializers.Serializer):
    attempt = serializers.IntegerField()
    level = serializers.CharField()
    message = serializers.CharField()
    at = serializers.DateTimeField()


class TaskSerializer(serializers.Serializer):
    """A task as the API shows it: secret payload fields masked."""

    id = serializers.UUIDField()
    name = serializers.CharField()
    type = serializers.ChoiceField(
        choices=TaskType.choices,
        source="task_type",
        help_text="What kind of work it is, as its task declares (other: declares none).",
    )
    queue = serializers.CharField()
    status = serializers.ChoiceField(choices=TaskStatus.choices)
    priority = serializers.IntegerField()
    attempt = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    progress = serializers.IntegerField()
    payload = serializers.SerializerMethodField()
    result = serializers.JSONField(allow_null=True)
    error = serializers.CharField()
    correlation_id = serializers.CharField()
    user_id = serializers.CharField()
    dedup_key = serializers.CharField(allow_null=True)
    scheduled_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    duration = serializers.FloatField(allow_null=True, help_text="Seconds of the last attempt.")
    cancel_requested = serializers.BooleanField()

    def get_payload(self, task) -> dict:
        return redact(all_definitions().get(task.name), task.payload)


#: Events and logs shown inline on a task, the newest; the rest are paged by their endpoints.
DETAIL_HISTORY = 50


def _latest(rows, limit: int = DETAIL_HISTORY) -> list:
    """The newest ``limit`` rows of a task's history, oldest first like the pages."""
    return list(rows.order_by("-id")[:limit])[::-1]


def _history_url(serializer: serializers.Serializer, task, kind: str) -> str:
    path = reverse(f"taskhub:task-{kind}", kwargs={"task_id": task.id})
    request = serializer.context.get("request")
    return request.build_absolute_uri(path) if request else path


class TaskDetailSerializer(TaskSerializer):
    """A task with the newest of its events and logs (at most ``DETAIL_HISTORY`` each), how
    many there are in all, and where to page through all of them."""

    traceback = serializers.CharField()
    events = serializers.SerializerMethodField(help_text="The newest events, oldest first.")
    events_count = serializers.SerializerMethodField(help_text="All of the task's events.")
    events_url = serializers.SerializerMethodField(help_text="Every event, paged (?cursor=).")
    logs = serializers.SerializerMethodField(help_text="The newest log lines, oldest first.")
    logs_count = serializers.SerializerMethodField(help_text="All of the task's log lines.")
    logs_url = serializers.SerializerMethodField(help_text="Every log line, paged (?cursor=).")

    @extend_schema_field(TaskEventSerializer(many=True))
    def get_events(self, task) -> list:
        return TaskEventSerializer(_latest(task.events), many=True).data

    def get_events_count(self, task) -> int:
        return task.events.count()

    def get_events_url(self, task) -> str:
        return _history_url(self, task, "events")

    @extend_schema_field(TaskLogSerializer(many=True))
    def get_logs(self, task) -> list:
        return TaskLogSerializer(_latest(task.logs), many=True).data

    def get_logs_count(self, task) -> int:
        return task.logs.count()

    def get_logs_url(self, task) -> str:
        return _history_url(self, task, "logs")


class HistoryPageQuerySerializer(serializers.Serializer):
    cursor = serializers.CharField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500)


class TaskEventPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = TaskEventSerializer(many=True)


class TaskLogPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = TaskLogSerializer(many=True)


class TaskListSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = TaskSerializer(many=True)


class TaskFilterSerializer(serializers.Serializer):
    q = serializers.CharField(
        required=False,
        max_length=search.MAX_LENGTH,
        help_text="A search: `name:emails error:timeout payload.user_id:42 status:failed,"
        "cancelled queue:email id:6f0c` and bare words (the name or the error contains them, "
        "or an id, correlation id, user id or dedup key equals them); docs/api.md.",
    )
    status = serializers.MultipleChoiceField(choices=TaskStatus.choices, required=False)
    queue = serializers.CharField(required=False, max_length=100)
    task = serializers.CharField(required=False, max_length=200)
    type = serializers.ChoiceField(
        choices=TaskType.choices, required=False, help_text="What kind of work (other: none)."
    )
    correlation_id = serializers.CharField(required=False, max_length=200)
    user_id = serializers.CharField(required=False, max_length=200)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    cursor = serializers.CharField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500)

    def validate_q(self, value: str) -> str:
        try:
            search.parse(value)
        except search.SearchError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def to_internal_value(self, data):
        # ?status=failed&status=cancelled or ?status=failed,cancelled
        if hasattr(data, "getlist"):
            data = {k: data.getlist(k) if k == "status" else data.get(k) for k in data}
            data["status"] = [s for v in data.get("status", []) for s in v.split(",") if s]
            if not data["status"]:
                data.pop("status")
        return super().to_internal_value(data)


class BulkTaskFilterSerializer(StrictSerializer, TaskFilterSerializer):
    """The task list's filter as a JSON object, without its paging. An unknown key is refused:
    a misspelt condition must never widen what a bulk action touches."""

    cursor = None
    limit = None

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise serializers.ValidationError("Must be an object of the task list's filters.")
        status = data.get("status")
        if isinstance(status, str):  # "failed,cancelled" as in the list's query string
            data = {**data, "status": [s for s in status.split(",") if s]}
        return super().to_internal_value(data)


class BulkActionRequestSerializer(StrictSerializer):
    filter = BulkTaskFilterSerializer(
        required=False,
        help_text="The tasks to act on: the same keys as GET /api/tasks's query "
        "(status as a list or comma-separated).",
    )
    all = serializers.BooleanField(
        default=False,
        help_text="Required (true) when the filter is empty: the action then covers every task.",
    )
    expected_count = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text="The count the caller confirmed; if the filter now matches another number of "
        "tasks the answer is 409 and nothing changes.",
    )
    dry_run = serializers.BooleanField(
        default=False, help_text="Only count: what would be matched and acted on."
    )
    background = serializers.BooleanField(
        default=False,
        help_text="Run the action as a taskhub.bulk_action task (202) whatever the count; "
        "without it, only above BULK_ACTION_INLINE_MAX eligible tasks.",
    )

    def validate(self, attrs):
        attrs.setdefault("filter", {})
        if not attrs["all"] and selects_everything(filtered_tasks(attrs["filter"])):
            raise serializers.ValidationError(
                {
                    "filter": [
                        'The filter is empty: it matches every task. Send "all": true to act '
                        "on every task."
                    ]
                }
            )
        return attrs


class BulkCountSerializer(serializers.Serializer):
    """The counts a bulk action answers with, run or scheduled."""

    matched = serializers.IntegerField(help_text="Tasks the filter matched when counted.")
    eligible = serializers.IntegerField(
        help_text="Of those, the tasks whose status allowed the action when counted."
    )


class BulkActionResultSerializer(BulkCountSerializer):
    acted = serializers.IntegerField(help_text="Tasks retried, cancelled or deleted (0: dry run).")
    skipped = serializers.IntegerField(
        help_text="matched - acted: not allowed by their status, changed meanwhile, or busy."
    )
    dry_run = serializers.BooleanField()


class BulkActionScheduledSerializer(BulkCountSerializer):
    task_id = serializers.UUIDField(help_text="The taskhub.bulk_action task running the action.")
    status_url = serializers.URLField(
        help_text="That task in the API (GET): its status, progress and, once done, its result "
        "(matched, eligible, acted, skipped)."
    )


class BulkCountChangedSerializer(serializers.Serializer):
    error = serializers.CharField()
    matched = serializers.IntegerField(help_text="What the filter matches now.")
    expected_count = serializers.IntegerField()


class TimeRangeField(serializers.DateTimeField):
    """ISO 8601 (naive means UTC) or a Unix timestamp in seconds or milliseconds."""

    def to_internal_value(self, value):
        text = str(value).strip()
        if text.lstrip("-").replace(".", "", 1).isdigit():
            number = float(text)
            if number > 1e11:  # milliseconds, as JavaScript clients send them
                number /= 1000
            try:
                return dt.datetime.fromtimestamp(number, tz=dt.UTC)
            except (OverflowError, OSError, ValueError):
                raise serializers.ValidationError("Timestamp out of range.") from None
        return super().to_internal_value(text)


class TimeRangeSerializer(serializers.Serializer):
    from_ = TimeRangeField(required=False, help_text="Start (inclusive); default: 24 h before to.")
    to = TimeRangeField(required=False, help_text="End (exclusive); default: now.")

    MAX_DAYS = 400

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields

    def validate(self, attrs):
        end = attrs.get("to") or timezone.now()
        start = attrs.get("from") or end - dt.timedelta(hours=24)
        if start >= end:
            raise serializers.ValidationError({"from": ["Must be before to."]})
        if end - start > dt.timedelta(days=self.MAX_DAYS):
            message = f"The range may span {self.MAX_DAYS} days at most."
            raise serializers.ValidationError({"from": [message]})
        return {"start": start, "end": end}
