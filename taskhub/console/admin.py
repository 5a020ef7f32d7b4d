"""The operator console: every engine model in the admin, read-only, with confirmed and audited
actions, and the queues dashboard (the Queues page).

Lists stay fast on millions of rows: no full COUNT(*) (EstimatedCountPaginator), sorting only
along created_at (indexed, alone and after status, queue and name), filters that need no query
to draw, and search by exact id / correlation id / user id / dedup key (each indexed) — the
task list's box takes the API's search language (taskhub.console.search), which indexes serve.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR, TO_FIELD_VAR, IncorrectLookupParameters
from django.contrib.admin.views.main import ALL_VAR, ERROR_FLAG, ORDER_VAR, PAGE_VAR
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponseRedirect, JsonResponse, QueryDict
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from ..conf import taskhub_settings
from ..definitions.payloads import redact
from ..definitions.priorities import PRIORITIES
from ..definitions.registry import all_definitions, declared_queues, get_external_definition
from ..definitions.task_types import TaskType
from ..errors import InvalidTaskRequest
from ..models import (
    DeadLetter,
    OperatorAction,
    QueueState,
    ScheduleRun,
    Task,
    TaskEvent,
    TaskLog,
    TaskSchedule,
    TaskStatus,
    WorkerProcess,
)
from ..scheduler import schedules as schedule_services
from . import analytics, bulk, bulk_jobs, search, services
from .admin_tools import (
    SHOWN_HISTORY,
    CreatedFilter,
    RoleAdmin,
    confirm_then,
    pretty_json,
    status_badge,
)
from .audit import audited, record
from .export import FORMATS, export_response
from .roles import ADMIN, OPERATOR, VIEWER, has_role
from .task_filters import selects_everything


def brand_admin_site(site: admin.AdminSite | None = None) -> admin.AdminSite:
    """Give an admin site the console's titles ("taskhub console"); returns the site.

    Opt-in: importing taskhub changes no admin site, so a host's admin keeps its own name. A
    project whose admin *is* the taskhub console calls this once, from its URLconf::

        from taskhub.console.admin import brand_admin_site

        brand_admin_site(admin.site)
    """
    site = admin.site if site is None else site
    site.site_header = "taskhub console"
    site.site_title = "taskhub"
    site.index_title = "Tasks, queues and operators"
    return site


def image_result_url(task: Task) -> str | None:
    """The url of the image an ``image.process`` task stored, if it is one a page may link to
    (a path of this site, or http(s)) — a result is the handler's output, not trusted markup."""
    result = task.result if task.name == "image.process" else None
    url = result.get("url") if isinstance(result, dict) else None
    if not isinstance(url, str):
        return None
    local = url.startswith("/") and not url.startswith("//")
    return url if local or url.startswith(("https://", "http://")) else None


def progress_bar(value: int):
    return format_html(
        '<span class="th-progress" title="{}%"><span style="width:{}%"></span></span>',
        value,
        max(0, min(100, value)),
    )


# --- filters (each draws its choices without a query) ----------------------------------------


class StatusFilter(admin.SimpleListFilter):
    title, parameter_name = "status", "status"

    def lookups(self, request, model_admin):
        return [("waiting", "waiting (due)"), ("delayed", "delayed"), *TaskStatus.choices]

    def queryset(self, request, queryset):
        value, now = self.value(), timezone.now()
        ready = (TaskStatus.PENDING, TaskStatus.RETRYING)
        if value == "waiting":
            return queryset.filter(status__in=ready, scheduled_at__lte=now)
        if value == "delayed":
            return queryset.filter(status__in=ready, scheduled_at__gt=now)
        if value in TaskStatus.values:
            return queryset.filter(status=value)
        return queryset


class QueueFilter(admin.SimpleListFilter):
    title, parameter_name = "queue", "queue"

    def lookups(self, request, model_admin):
        return [(q, q) for q in declared_queues()]

    def queryset(self, request, queryset):
        return queryset.filter(queue=self.value()) if self.value() else queryset


class TaskNameFilter(admin.SimpleListFilter):
    title, parameter_name = "task", "task"

    def lookups(self, request, model_admin):
        return [(name, name) for name in sorted(all_definitions())]

    def queryset(self, request, queryset):
        return queryset.filter(name=self.value()) if self.value() else queryset


class TaskTypeFilter(admin.SimpleListFilter):
    title, parameter_name = "type", "type"

    def lookups(self, request, model_admin):
        return [(value, value) for value in TaskType.values]

    def queryset(self, request, queryset):
        # Only a known type filters: an edited URL with another value lists every task.
        if self.value() in TaskType.values:
            return queryset.filter(task_type=self.value())
        return queryset


class PriorityFilter(admin.SimpleListFilter):
    title, parameter_name = "priority", "priority"

    def lookups(self, request, model_admin):
        return [(str(n), name) for name, n in PRIORITIES.items()]

    def queryset(self, request, queryset):
        if self.value() and self.value().lstrip("-").isdigit():
            return queryset.filter(priority=int(self.value()))
        return queryset


# --- tasks ------------------------------------------------------------------------------------

#: Query parameters of the changelist that are not filters: page, ordering, error flag, popups.
_NOT_FILTERS = {PAGE_VAR, ORDER_VAR, ERROR_FLAG, ALL_VAR, TO_FIELD_VAR, IS_POPUP_VAR}


def _confirmed_count(form) -> tuple[int, dt.datetime] | None:
    """The count a confirmation page showed and when it was taken, or None if the form lacks
    them (or was tampered with)."""
    as_of = parse_datetime(form.get("as_of", ""))
    count = form.get("expected_count", "")
    if as_of is None or not count.isdigit():
        return None
    return int(count), as_of


def matching_tasks(user, params: dict[str, str]):
    """The tasks the task list shows ``user`` with ``params`` (its query string's filters and
    search), outside a request: what a bulk action the admin scheduled as a task acts on, read
    by the same list filters and search as the page the operator confirmed."""
    try:
        search.parse(params.get("q", ""))
    except search.SearchError as exc:
        raise bulk_jobs.BulkJobRefused(f"search: {exc}") from None
    request = HttpRequest()
    request.method = "GET"
    request.GET = QueryDict(urlencode(params))
    request.user = user
    try:
        return TaskAdmin(Task, admin.site).get_changelist_instance(request).queryset
    except IncorrectLookupParameters as exc:
        raise bulk_jobs.BulkJobRefused(f"the filters are not valid: {exc}") from None


@admin.register(Task)
class TaskAdmin(RoleAdmin):
    list_display = (
        "short_id",
        "name",
        "task_type",
        "queue",
        "badge",
        "attempts",
        "progress_bar",
        "created_at",
        "took",
    )
    list_filter = (
        StatusFilter,
        QueueFilter,
        TaskTypeFilter,
        TaskNameFilter,
        PriorityFilter,
        CreatedFilter,
    )
    search_fields = ("id",)
    search_help_text = (
        "name:… error:… payload.key:value status:… queue:… id:prefix, or words found in the "
        "name or error (3 letters or more) or equal to an id, correlation id, user id or dedup "
        "key; -term: does not match. Example: name:emails error:timeout payload.user_id:42 "
        "-status:completed"
    )
    sortable_by = ("created_at",)
    ordering = ("-created_at",)
    actions = ("retry_tasks", "cancel_tasks")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "name",
                    "task_type",
                    "queue",
                    "badge",
                    "attempts",
                    "priority",
                    "progress_bar",
                )
            },
        ),
        ("Payload and result", {"fields": ("payload_json", "result_json")}),
        ("Error", {"fields": ("error", "traceback_text")}),
        ("Timeline", {"fields": ("events_timeline", "logs_table")}),
        ("Identity", {"fields": ("correlation_id", "user_id", "dedup_key", "worker_id")}),
        (
            "Times",
            {
                "fields": (
                    "created_at",
                    "scheduled_at",
                    "queued_at",
                    "started_at",
                    "completed_at",
                    "took",
                )
            },
        ),
    )
    readonly_fields = (
        "id",
        "name",
        "task_type",
        "queue",
        "badge",
        "attempts",
        "priority",
        "progress_bar",
        "payload_json",
        "result_json",
        "error",
        "traceback_text",
        "events_timeline",
        "logs_table",
        "correlation_id",
        "user_id",
        "dedup_key",
        "worker_id",
        "created_at",
        "scheduled_at",
        "queued_at",
        "started_at",
        "completed_at",
        "took",
    )
    change_form_template = "admin/taskhub/task/change_form.html"

    class Media:
        # j / k, Enter / o, r, / and ? on the task list (it does nothing on a task's page)
        js = ("taskhub/task_shortcuts.js",)

    def get_search_results(self, request, queryset, search_term):
        try:
            return search.filter_tasks(queryset, search_term), False
        except search.SearchError as exc:
            self.message_user(request, f"Search: {exc}", messages.ERROR)
            return queryset.none(), False

    @admin.display(description="id")
    def short_id(self, task):
        return str(task.id)[:8]

    @admin.display(description="status")
    def badge(self, task):
        return status_badge(task.status)

    @admin.display(description="attempt")
    def attempts(self, task):
        return f"{task.attempt}/{task.max_attempts}"

    @admin.display(description="progress")
    def progress_bar(self, task):
        return progress_bar(task.progress)

    @admin.display(description="duration")
    def took(self, task):
        return f"{task.duration:.3f} s" if task.duration is not None else "–"

    @admin.display(description="payload (secret fields masked)")
    def payload_json(self, task):
        return pretty_json(redact(all_definitions().get(task.name), task.payload))

    @admin.display(description="result")
    def result_json(self, task):
        url = image_result_url(task)
        if url is None:
            return pretty_json(task.result)
        return format_html(
            '{}<a href="{}" target="_blank" rel="noopener">Open the image</a>'
            '<img class="th-image-preview" src="{}" alt="the processed image" loading="lazy">',
            pretty_json(task.result),
            url,
            url,
        )

    @admin.display(description="traceback")
    def traceback_text(self, task):
        return format_html('<pre class="th-trace">{}</pre>', task.traceback or "–")

    @admin.display(description="events")
    def events_timeline(self, task):
        rows = task.events.order_by("id")[:SHOWN_HISTORY]
        items = format_html_join(
            "",
            '<li class="th-event th-event-{}"><time>{}</time> <b>{}</b> '
            "<span>attempt {}</span> <code>{}</code></li>",
            (
                (
                    e.kind,
                    e.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                    e.kind,
                    e.attempt,
                    json.dumps(e.data) if e.data else "",
                )
                for e in rows
            ),
        )
        return format_html('<ol class="th-timeline">{}</ol>', items)

    @admin.display(description="handler logs")
    def logs_table(self, task):
        rows = task.logs.order_by("id")[:SHOWN_HISTORY]
        lines = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (log.at.strftime("%H:%M:%S.%f")[:-3], log.attempt, log.level, log.message)
                for log in rows
            ),
        )
        if not lines:
            return "–"
        return format_html(
            '<table class="th-logs"><tr><th>at</th><th>attempt</th><th>level</th>'
            "<th>message</th></tr>{}</table>",
            lines,
        )

    @admin.action(description="Retry selected failed or cancelled tasks", permissions=["operate"])
    def retry_tasks(self, request, queryset):
        actor = request.user.get_username()
        return confirm_then(
            self,
            request,
            queryset,
            action="task.retry",
            verb="Retry tasks",
            target_type="task",
            perform=lambda t: services.retry_task(t.id, actor=actor),
        )

    @admin.action(description="Cancel selected tasks", permissions=["operate"])
    def cancel_tasks(self, request, queryset):
        actor = request.user.get_username()
        return confirm_then(
            self,
            request,
            queryset,
            action="task.cancel",
            verb="Cancel tasks",
            target_type="task",
            perform=lambda t: services.cancel_task(t.id, actor=actor),
        )

    def get_urls(self):
        return [
            # Before the object URLs, which "bulk/retry/" would match as an id too.
            path(
                "bulk/<str:action>/",
                # Each batch commits on its own, even in a project with ATOMIC_REQUESTS.
                transaction.non_atomic_requests(self.admin_site.admin_view(self.bulk_action)),
                name="taskhub_task_bulk",
            ),
            path(
                "export/<str:file_format>/",
                self.admin_site.admin_view(self.export),
                name="taskhub_task_export",
            ),
            path(
                "<path:object_id>/do/<str:verb>/",
                self.admin_site.admin_view(self.task_action),
                name="taskhub_task_do",
            ),
            *super().get_urls(),
        ]

    def export(self, request, file_format):
        """The list as shown — its filters and search, every page — as a CSV or JSONL
        download (the links above the list carry its query string here)."""
        if file_format not in FORMATS:
            raise Http404
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = reverse("admin:taskhub_task_changelist")
        try:
            search.parse(request.GET.get("q", ""))
            tasks = self.get_changelist_instance(request).get_queryset(request)
        except search.SearchError as exc:
            self.message_user(request, f"Search: {exc}", messages.ERROR)
            return HttpResponseRedirect(f"{changelist}?{request.GET.urlencode()}")
        except IncorrectLookupParameters:
            return HttpResponseRedirect(f"{changelist}?e=1")
        record(
            request.user,
            "task.export",
            source="admin",
            target_type="task",
            format=file_format,
            filters=request.GET.dict(),
        )
        return export_response(tasks, file_format)

    def task_action(self, request, object_id, verb):
        """Retry or cancel from the task's own page: a confirmation, then the audited action."""
        if verb not in ("retry", "cancel"):
            raise Http404
        if not has_role(request.user, OPERATOR):
            raise PermissionDenied
        try:
            task = services.get_task(object_id)
        except services.TaskNotFound:
            raise Http404 from None
        page = reverse("admin:taskhub_task_change", args=[task.pk])
        if request.method != "POST":
            return TemplateResponse(
                request,
                "admin/taskhub/confirm_object.html",
                {
                    **self.admin_site.each_context(request),
                    "title": f"Confirm: {verb} task",
                    "verb": verb,
                    "object": task,
                    "opts": self.model._meta,
                    "back": page,
                },
            )
        perform = services.retry_task if verb == "retry" else services.cancel_task
        try:
            with audited(
                request.user, f"task.{verb}", source="admin", target_type="task", target_id=task.id
            ):
                perform(task.id, actor=request.user.get_username())
            self.message_user(request, f"Task {verb}: done.", messages.SUCCESS)
        except services.InvalidTransition as exc:
            self.message_user(request, str(exc), messages.WARNING)
        return HttpResponseRedirect(page)

    def render_change_form(self, request, context, *args, **kwargs):
        context["can_operate"] = has_role(request.user, OPERATOR)
        return super().render_change_form(request, context, *args, **kwargs)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            # the buttons acting on every row the list's filters match (bulk_action)
            "bulk_actions": [a for a, role in bulk.ACTIONS.items() if has_role(request.user, role)],
        }
        return super().changelist_view(request, extra_context)

    def bulk_action(self, request, action: str):
        """Retry, cancel or delete every task the changelist's current filters match (the query
        string it was opened with), not only a page: a confirmation showing the count, then
        the action in batches (taskhub.console.bulk), audited once."""
        if action not in bulk.ACTIONS:
            raise Http404
        if not has_role(request.user, bulk.ACTIONS[action]):
            raise PermissionDenied
        listing = reverse("admin:taskhub_task_changelist")
        filters = {k: v for k, v in request.GET.items() if k not in _NOT_FILTERS}
        back = f"{listing}?{urlencode(filters)}" if filters else listing
        try:
            tasks = self.get_changelist_instance(request).queryset
        except IncorrectLookupParameters:
            self.message_user(request, "Those filters are not valid.", messages.ERROR)
            return HttpResponseRedirect(listing)
        everything = selects_everything(tasks)
        problem = ""
        if request.method == "POST":
            confirmed = _confirmed_count(request.POST)
            if everything and request.POST.get("all") != "yes":
                problem = "No filter is set: tick the box to act on every task."
            elif confirmed is None:
                problem = "The confirmation was incomplete; check the count and confirm again."
            else:
                expected, as_of = confirmed
                try:
                    counted = bulk.checked_count(
                        action, tasks, expected_count=expected, as_of=as_of
                    )
                    if bulk_jobs.in_background(counted):
                        return self._bulk_in_background(
                            request, action, filters, everything, counted, back
                        )
                    result = bulk.run(
                        action,
                        tasks,
                        user=request.user,
                        source="admin",
                        filters={**filters, **({"all": True} if everything else {})},
                        counted=counted,
                    )
                except bulk.CountChanged as exc:
                    problem = str(exc)
                else:
                    done = {"retry": "retried", "cancel": "cancelled", "delete": "deleted"}[action]
                    self.message_user(
                        request,
                        f"{result.matched} tasks matched: {result.acted} {done}, "
                        f"{result.skipped} skipped.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(back)
        counted = bulk.count(action, tasks)
        return TemplateResponse(
            request,
            "admin/taskhub/task/confirm_bulk.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Confirm: {action} every matching task",
                "opts": self.model._meta,
                "action": action,
                "counted": counted,
                "skipped": counted.matched - counted.eligible,
                "rule": bulk.RULES[action],
                "filters": filters,
                "everything": everything,
                "problem": problem,
                "back": back,
            },
        )

    def _bulk_in_background(self, request, action, filters, everything, counted, back):
        """Too many rows for a request (``BULK_ACTION_INLINE_MAX``): the action as a task, and a
        message linking to it (its progress, then its result)."""
        job = bulk_jobs.schedule_action(
            action,
            user=request.user,
            source="admin",
            filters=filters,
            everything=everything,
            counted=counted,
            expected_count=counted.matched,
            dedup=True,  # the same confirmation posted twice: one task
        )
        link = reverse("admin:taskhub_task_change", args=[job.pk])
        self.message_user(
            request,
            format_html(
                "{} tasks matched, {} to {}: too many for one request, so the action runs as "
                'task <a href="{}">{}</a> (its progress and result are on its page).',
                counted.matched,
                counted.eligible,
                action,
                link,
                str(job.pk)[:8],
            ),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(back)


@admin.register(TaskEvent)
class TaskEventAdmin(RoleAdmin):
    list_display = ("id", "task_link", "kind", "attempt", "at")
    list_filter = ("kind",)
    search_fields = ("task__id",)
    search_help_text = "Exact task id."
    sortable_by = ()
    ordering = ("-id",)

    def get_search_results(self, request, queryset, search_term):
        try:
            return queryset.filter(task_id=uuid.UUID(search_term.strip())), False
        except ValueError:
            return (queryset.none() if search_term.strip() else queryset), False

    @admin.display(description="task")
    def task_link(self, event):
        url = reverse("admin:taskhub_task_change", args=[event.task_id])
        return format_html('<a href="{}">{}</a>', url, str(event.task_id)[:8])


@admin.register(TaskLog)
class TaskLogAdmin(TaskEventAdmin):
    list_display = ("id", "task_link", "level", "attempt", "message", "at")
    list_filter = ("level",)


@admin.register(DeadLetter)
class DeadLetterAdmin(RoleAdmin):
    list_display = ("task_name", "queue", "task_link", "short_error", "attempts", "created_at")
    list_filter = (QueueFilter, TaskNameFilter)
    sortable_by = ("created_at",)
    actions = ("retry_dead_letters", "remove_dead_letters")
    readonly_fields = (
        "task_link",
        "task_name",
        "queue",
        "payload_json",
        "error",
        "traceback_text",
        "attempts",
        "created_at",
    )
    exclude = ("payload", "traceback", "task")

    @admin.display(description="task")
    def task_link(self, letter):
        return TaskEventAdmin.task_link(self, letter)

    @admin.display(description="error")
    def short_error(self, letter):
        return (letter.error[:120] + "…") if len(letter.error) > 120 else letter.error

    @admin.display(description="payload (secret fields masked)")
    def payload_json(self, letter):
        return pretty_json(redact(all_definitions().get(letter.task_name), letter.payload))

    @admin.display(description="traceback")
    def traceback_text(self, letter):
        return format_html('<pre class="th-trace">{}</pre>', letter.traceback or "–")

    @admin.action(description="Retry selected dead letters", permissions=["operate"])
    def retry_dead_letters(self, request, queryset):
        actor = request.user.get_username()
        return confirm_then(
            self,
            request,
            queryset,
            action="dead_letter.retry",
            verb="Retry dead letters",
            target_type="task",
            target_id=lambda d: d.task_id,
            perform=lambda d: services.retry_dead_letter(d.id, actor=actor),
        )

    @admin.action(description="Remove selected dead letters", permissions=["destroy"])
    def remove_dead_letters(self, request, queryset):
        return confirm_then(
            self,
            request,
            queryset,
            action="dead_letter.remove",
            verb="Remove dead letters",
            target_type="dead_letter",
            perform=lambda d: services.remove_dead_letter(d.id),
        )


# --- queues: the dashboard --------------------------------------------------------------------

QUEUE_ACTIONS = {"pause": OPERATOR, "resume": OPERATOR, "clear": ADMIN}


@admin.register(QueueState)
class QueueAdmin(RoleAdmin):
    """The Queues page is the dashboard: live counts, throughput, failure rate, oldest waiting
    age and pause / resume / clear for every declared queue."""

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("snapshot.json", view(self.snapshot), name="taskhub_queues_snapshot"),
            path("<str:queue>/<str:verb>/", view(self.queue_action), name="taskhub_queue_do"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        if not has_role(request.user, VIEWER):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Queues",
            "opts": self.model._meta,
            "queues": analytics.overview_snapshot.get(),
            "refresh_seconds": taskhub_settings.DASHBOARD_REFRESH_SECONDS,
            "can_operate": has_role(request.user, OPERATOR),
            "can_clear": has_role(request.user, ADMIN),
            "task_list": reverse("admin:taskhub_task_changelist"),
            "snapshot_url": reverse("admin:taskhub_queues_snapshot"),
        }
        return TemplateResponse(request, "admin/taskhub/queues_dashboard.html", context)

    def snapshot(self, request):
        if not has_role(request.user, VIEWER):
            raise PermissionDenied
        return JsonResponse({"at": timezone.now(), "queues": analytics.overview_snapshot.get()})

    def queue_action(self, request, queue, verb):
        if verb not in QUEUE_ACTIONS or queue not in declared_queues():
            raise Http404
        if not has_role(request.user, QUEUE_ACTIONS[verb]):
            raise PermissionDenied
        dashboard = reverse("admin:taskhub_queuestate_changelist")
        if request.method != "POST":
            return TemplateResponse(
                request,
                "admin/taskhub/confirm_object.html",
                {
                    **self.admin_site.each_context(request),
                    "title": f"Confirm: {verb} {queue}",
                    "verb": verb,
                    "object": f"queue {queue}",
                    "opts": self.model._meta,
                    "back": dashboard,
                    "warning": "Every waiting task of the queue will be cancelled."
                    if verb == "clear"
                    else "",
                },
            )
        with audited(
            request.user,
            f"queue.{verb}",
            source="admin",
            target_type="queue",
            target_id=queue,
            atomic=verb != "clear",
        ) as extra:
            if verb == "clear":
                extra["cancelled"] = services.clear_queue(queue, actor=request.user.get_username())
            else:
                getattr(services, f"{verb}_queue")(queue)
        analytics.overview_snapshot.clear()
        done = {"pause": "paused", "resume": "resumed", "clear": "cleared"}[verb]
        note = f" ({extra['cancelled']} waiting tasks cancelled)" if verb == "clear" else ""
        self.message_user(request, f"Queue {queue} {done}{note}.", messages.SUCCESS)
        return HttpResponseRedirect(dashboard)


@admin.register(WorkerProcess)
class WorkerProcessAdmin(RoleAdmin):
    list_display = (
        "id",
        "hostname",
        "pid",
        "threads",
        "queue_list",
        "last_heartbeat_at",
        "alive",
        "stopped_at",
    )
    ordering = ("-last_heartbeat_at",)

    @admin.display(description="queues")
    def queue_list(self, worker):
        return ", ".join(worker.queues) or "all"

    @admin.display(description="alive", boolean=True)
    def alive(self, worker):
        limit = dt.timedelta(seconds=taskhub_settings.LIFELINE_TIMEOUT)
        return worker.stopped_at is None and timezone.now() - worker.last_heartbeat_at < limit


@admin.register(OperatorAction)
class OperatorActionAdmin(RoleAdmin):
    list_display = ("at", "username", "source", "action", "target_type", "target_id", "details")
    list_filter = ("source", "action", "target_type")
    search_fields = ("username", "target_id")
    search_help_text = "Exact user name or target id."
    sortable_by = ()

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(username=term) | Q(target_id=term)), False


# -- schedules: edits go through taskhub.scheduler.schedules, which recomputes the next run -----


class TaskScheduleForm(forms.ModelForm):
    """The task name is checked on the form, so a refusal is shown next to the field."""

    class Meta:
        model = TaskSchedule
        fields = [
            "name",
            "task_name",
            "payload",
            "cron",
            "interval_seconds",
            "run_at",
            "timezone",
            "enabled",
        ]

    def clean_task_name(self) -> str:
        name = self.cleaned_data["task_name"]
        if self.instance.source == "code":
            return name  # declared in code: only enabled changes here
        try:
            get_external_definition(name)  # unknown, or internal: the application's own
        except InvalidTaskRequest as exc:
            raise forms.ValidationError(str(exc)) from None
        return name


class ScheduleRunInline(admin.TabularInline):
    model = ScheduleRun
    extra = 0
    can_delete = False
    fields = ("slot", "trigger", "task_id", "status", "error")
    readonly_fields = fields
    ordering = ("-slot",)

    def has_view_permission(self, request, obj=None):
        return has_role(request.user, VIEWER)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TaskSchedule)
class TaskScheduleAdmin(RoleAdmin):
    """Viewers see schedules; operators run, enable and disable them (confirmed, audited);
    admins create, edit and delete them. Every change goes through taskhub.scheduler.schedules."""

    paginator = admin.ModelAdmin.paginator  # a few hundred rows at most: exact counts are fine
    show_full_result_count = True
    list_display = (
        "name",
        "task_name",
        "when",
        "timezone",
        "enabled",
        "next_run_at",
        "last_run_at",
        "last_status",
        "source",
    )
    list_filter = ("enabled", "kind", "source", "last_status")
    search_fields = ("name", "task_name")
    fields = (
        "name",
        "task_name",
        "payload",
        "cron",
        "interval_seconds",
        "run_at",
        "timezone",
        "enabled",
        "source",
        "next_run_at",
        "last_run_at",
        "last_status",
    )
    readonly_fields = ("source", "next_run_at", "last_run_at", "last_status")
    form = TaskScheduleForm
    inlines = [ScheduleRunInline]
    actions = ("run_now", "enable", "disable")

    def has_add_permission(self, request) -> bool:
        return self.has_destroy_permission(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self.has_destroy_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_destroy_permission(request) and (obj is None or obj.source != "code")

    def save_model(self, request, obj, form, change):
        timing = dict(cron=obj.cron or None, interval=obj.interval_seconds, run_at=obj.run_at)
        action = "schedule.update" if change else "schedule.create"
        with audited(
            request.user, action, source="admin", target_type="schedule", target_id=obj.name
        ):
            if change:
                changes = {"enabled": obj.enabled}
                if obj.source != "code":
                    changes.update(
                        task=obj.task_name, payload=obj.payload, timezone=obj.timezone, **timing
                    )
                saved = schedule_services.update_schedule(obj.pk, **changes)
            else:
                saved = schedule_services.create_schedule(
                    obj.name,
                    obj.task_name,
                    payload=obj.payload,
                    timezone_name=obj.timezone,
                    enabled=obj.enabled,
                    **timing,
                )
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        with audited(
            request.user,
            "schedule.delete",
            source="admin",
            target_type="schedule",
            target_id=obj.name,
        ):
            schedule_services.delete_schedule(obj.pk)

    def _confirm(self, request, queryset, action: str, verb: str, perform):
        return confirm_then(
            self,
            request,
            queryset,
            action=action,
            verb=verb,
            target_type="schedule",
            target_id=lambda row: row.name,
            perform=lambda row: perform(row.pk),
        )

    @admin.action(description="Run selected schedules now", permissions=["operate"])
    def run_now(self, request, queryset):
        return self._confirm(
            request, queryset, "schedule.run_now", "Run schedules now", schedule_services.run_now
        )

    @admin.action(description="Enable selected schedules", permissions=["operate"])
    def enable(self, request, queryset):
        return self._confirm(
            request,
            queryset,
            "schedule.enable",
            "Enable schedules",
            schedule_services.enable_schedule,
        )

    @admin.action(description="Disable selected schedules", permissions=["operate"])
    def disable(self, request, queryset):
        return self._confirm(
            request,
            queryset,
            "schedule.disable",
            "Disable schedules",
            schedule_services.disable_schedule,
        )


@admin.register(ScheduleRun)
class ScheduleRunAdmin(RoleAdmin):
    list_display = ("schedule", "slot", "trigger", "task_id", "status")
    list_filter = ("status", "trigger", "schedule")
