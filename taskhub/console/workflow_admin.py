"""Workflows in the operator console: runs (read-only, with their graph, steps and merged
timeline, and confirmed, audited actions) and stored definitions (checked before saving).

Every action calls taskhub.workflows.operations — the same functions as the API and the
command line; definitions are saved through taskhub.workflows.definitions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from ..errors import TaskhubError
from ..models import Task, TaskEvent
from ..safety.masking import mask
from ..workflows import definitions, diagram, operations
from ..workflows.graph import InvalidWorkflow
from ..workflows.models import OPEN_RUN_STATUSES, WorkflowDefinition, WorkflowRun, WorkflowStatus
from .admin_tools import (
    SHOWN_HISTORY,
    STATUS_HUES,
    CreatedFilter,
    RoleAdmin,
    confirm_then,
    exact_search,
    hue_badge,
    pretty_json,
    status_badge,
)
from .audit import audited
from .roles import OPERATOR, has_role

#: Each run status's hue (console.css ``th-hue-<hue>``), as admin_tools.STATUS_HUES for tasks.
RUN_HUES = {
    WorkflowStatus.RUNNING: "purple",
    WorkflowStatus.SUCCEEDED: "green",
    WorkflowStatus.FAILED: "red",
    WorkflowStatus.CANCELLING: "orange",
    WorkflowStatus.CANCELLED: "slate",
    WorkflowStatus.COMPENSATING: "pink",
    WorkflowStatus.COMPENSATED: "blue",
    WorkflowStatus.COMPENSATION_FAILED: "darkred",
}


@dataclass(frozen=True)
class RunAction:
    """An operator action on a run: the statuses it applies to and the service it calls."""

    label: str
    audit: str
    statuses: tuple[str, ...]
    perform: Callable[[WorkflowRun, str], object]
    warning: str = ""


RUN_ACTIONS = {
    "cancel": RunAction(
        "Cancel",
        "workflow.cancel",
        (WorkflowStatus.RUNNING,),
        lambda run, actor: operations.cancel_run(run.id, actor=actor),
        "Steps not started are cancelled, running ones asked to stop; nothing new starts.",
    ),
    "cancel-compensate": RunAction(
        "Cancel and compensate",
        "workflow.cancel",
        (WorkflowStatus.RUNNING,),
        lambda run, actor: operations.cancel_run(run.id, compensate=True, actor=actor),
        "Then every completed step is undone by its compensation, newest first.",
    ),
    "retry": RunAction(
        "Retry from failure",
        "workflow.retry",
        (WorkflowStatus.FAILED, WorkflowStatus.CANCELLED),
        lambda run, actor: operations.retry_run(run.id, actor=actor),
        "Failed, cancelled and skipped steps run again; completed steps do not.",
    ),
    "compensation-retry": RunAction(
        "Retry compensation",
        "workflow.compensation_retry",
        (WorkflowStatus.COMPENSATION_FAILED,),
        lambda run, actor: operations.retry_compensation(run.id, actor=actor),
    ),
    "compensation-skip": RunAction(
        "Skip compensation",
        "workflow.compensation_skip",
        (WorkflowStatus.COMPENSATION_FAILED,),
        lambda run, actor: operations.skip_compensation(run.id, actor=actor),
        "The failed compensation is left as it is; the next one runs.",
    ),
    "compensation-resolve": RunAction(
        "Mark resolved",
        "workflow.compensation_resolve",
        (WorkflowStatus.COMPENSATION_FAILED,),
        lambda run, actor: operations.resolve_compensation(run.id, actor=actor),
        "The run ends compensated; compensations not yet attempted are cancelled.",
    ),
}


def run_badge(status: str):
    return hue_badge(status, RUN_HUES.get(status, "grey"))


class RunStatusFilter(admin.SimpleListFilter):
    title, parameter_name = "status", "status"

    def lookups(self, request, model_admin):
        return [("open", "open (running, cancelling, compensating)"), *WorkflowStatus.choices]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(status__in=OPEN_RUN_STATUSES)
        if self.value() in WorkflowStatus.values:
            return queryset.filter(status=self.value())
        return queryset


@admin.register(WorkflowRun)
class WorkflowRunAdmin(RoleAdmin):
    list_display = (
        "short_id",
        "name",
        "version",
        "badge",
        "on_failure",
        "created_at",
        "finished_at",
        "short_error",
    )
    list_filter = (RunStatusFilter, CreatedFilter)
    search_fields = ("id",)
    search_help_text = "Exact run id, workflow name, idempotency key, correlation id or user id."
    sortable_by = ("created_at",)
    ordering = ("-created_at",)
    actions = ("cancel_runs", "retry_runs")
    fieldsets = (
        (None, {"fields": ("id", "name", "version", "badge", "on_failure", "error")}),
        ("Graph", {"fields": ("graph_svg",)}),
        ("Steps", {"fields": ("steps_table",)}),
        ("Timeline", {"fields": ("timeline",)}),
        ("Input and context", {"fields": ("input_json", "context_json")}),
        ("Identity", {"fields": ("idempotency_key", "correlation_id", "user_id")}),
        ("Times", {"fields": ("created_at", "updated_at", "deadline_at", "finished_at")}),
    )
    readonly_fields = (
        "id",
        "name",
        "version",
        "badge",
        "on_failure",
        "error",
        "graph_svg",
        "steps_table",
        "timeline",
        "input_json",
        "context_json",
        "idempotency_key",
        "correlation_id",
        "user_id",
        "created_at",
        "updated_at",
        "deadline_at",
        "finished_at",
    )
    change_form_template = "admin/taskhub/workflowrun/change_form.html"
    change_list_template = "admin/taskhub/task/change_list.html"

    def get_search_results(self, request, queryset, search_term):
        fields = ("id", "name", "idempotency_key", "correlation_id", "user_id")
        return exact_search(queryset, search_term, fields), False

    @admin.display(description="id")
    def short_id(self, run):
        return str(run.id)[:8]

    @admin.display(description="status")
    def badge(self, run):
        return run_badge(run.status)

    @admin.display(description="error")
    def short_error(self, run):
        return (run.error[:100] + "…") if len(run.error) > 100 else run.error

    @admin.display(description="input")
    def input_json(self, run):
        return pretty_json(mask(run.input))

    @admin.display(description="context")
    def context_json(self, run):
        return pretty_json(run.context)

    def _detail(self, run) -> dict:
        cache = getattr(run, "_th_detail", None)
        if cache is None:
            cache = run._th_detail = operations.run_detail(run)
        return cache

    @admin.display(description="graph")
    def graph_svg(self, run):
        legend = format_html_join(
            " ",
            "{}",
            ((status_badge(s),) for s in sorted({s["status"] for s in self._detail(run)["steps"]})),
        )
        note = format_html(
            '<p class="th-muted">{} Compensation steps and their chain are dashed '
            '<span class="th-compensation-note">pink</span>, below the step each undoes.</p>',
            legend,
        )
        svg = diagram.draw(self._detail(run), STATUS_HUES)  # every text in it is escaped
        return format_html('<div class="th-wf-graph-box">{}</div>{}', mark_safe(svg), note)

    @admin.display(description="steps")
    def steps_table(self, run):
        steps = self._detail(run)["steps"][:SHOWN_HISTORY]
        rows = format_html_join(
            "",
            '<tr class="th-wf-row-{}"><td>{}</td><td><a href="{}">{}</a></td><td>{}</td>'
            "<td>{}/{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    s["kind"],
                    s["key"],
                    reverse("admin:taskhub_task_change", args=[s["task_id"]]),
                    s["task"],
                    status_badge(s["status"]),
                    s["attempts"],
                    s["max_attempts"],
                    _short(json.dumps(s["result"], default=str))
                    if s["result"] is not None
                    else "–",
                    _short(s["error"]) or "–",
                )
                for s in steps
            ),
        )
        return format_html(
            '<table class="th-logs th-wf-steps"><tr><th>step</th><th>task</th><th>status</th>'
            "<th>attempt</th><th>result</th><th>error</th></tr>{}</table>",
            rows,
        )

    @admin.display(description="events (run and steps)")
    def timeline(self, run):
        keys = {s["task_id"]: s["key"] for s in self._detail(run)["steps"]}
        merged = [(e.at, 0, e.id, "run", e.kind, e.data) for e in run.events.order_by("id")]
        step_events = TaskEvent.objects.filter(
            task__in=Task.objects.filter(workflow_run=run)
        ).order_by("at", "id")[:SHOWN_HISTORY]
        merged += [
            (e.at, 1, e.id, keys.get(str(e.task_id), str(e.task_id)[:8]), e.kind, e.data)
            for e in step_events
        ]
        merged.sort(key=lambda item: item[:3])
        items = format_html_join(
            "",
            '<li class="th-event th-event-{}{}"><time>{}</time> <b>{}</b> {} <code>{}</code></li>',
            (
                (
                    kind,
                    " th-wf-run-event" if source == "run" else "",
                    at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                    source,
                    kind,
                    json.dumps(data, default=str) if data else "",
                )
                for at, _, _, source, kind, data in merged
            ),
        )
        return format_html('<ol class="th-timeline">{}</ol>', items)

    # -- actions ---------------------------------------------------------------------------
    def get_urls(self):
        return [
            path(
                "<path:object_id>/do/<str:verb>/",
                self.admin_site.admin_view(self.run_action),
                name="taskhub_workflowrun_do",
            ),
            *super().get_urls(),
        ]

    def run_action(self, request, object_id, verb):
        """An action from the run's own page: a confirmation, then the audited service call."""
        action = RUN_ACTIONS.get(verb)
        if action is None:
            raise Http404
        if not has_role(request.user, OPERATOR):
            raise PermissionDenied
        try:
            run = operations.get_run(object_id)
        except operations.WorkflowNotFound:
            raise Http404 from None
        page = reverse("admin:taskhub_workflowrun_change", args=[run.pk])
        if request.method != "POST":
            return TemplateResponse(
                request,
                "admin/taskhub/confirm_object.html",
                {
                    **self.admin_site.each_context(request),
                    "title": f"Confirm: {action.label.lower()}",
                    "verb": action.label.lower(),
                    "object": f"workflow run {run}",
                    "opts": self.model._meta,
                    "back": page,
                    "warning": action.warning,
                },
            )
        try:
            with audited(
                request.user,
                action.audit,
                source="admin",
                target_type="workflow_run",
                target_id=run.id,
                verb=verb,
            ):
                action.perform(run, request.user.get_username())
            self.message_user(request, f"{action.label}: done.", messages.SUCCESS)
        except TaskhubError as exc:
            self.message_user(request, str(exc), messages.WARNING)
        return HttpResponseRedirect(page)

    def render_change_form(self, request, context, *args, **kwargs):
        run = context.get("original")
        context["run_actions"] = (
            [
                (verb, action.label)
                for verb, action in RUN_ACTIONS.items()
                if run is not None and run.status in action.statuses
            ]
            if has_role(request.user, OPERATOR)
            else []
        )
        return super().render_change_form(request, context, *args, **kwargs)

    def _confirm(self, request, queryset, verb: str):
        action, actor = RUN_ACTIONS[verb], request.user.get_username()
        return confirm_then(
            self,
            request,
            queryset,
            action=action.audit,
            verb=action.label,
            target_type="workflow_run",
            perform=lambda run: action.perform(run, actor),
        )

    @admin.action(description="Cancel selected runs", permissions=["operate"])
    def cancel_runs(self, request, queryset):
        return self._confirm(request, queryset, "cancel")

    @admin.action(description="Retry selected failed or cancelled runs", permissions=["operate"])
    def retry_runs(self, request, queryset):
        return self._confirm(request, queryset, "retry")


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- stored definitions ----------------------------------------------------------------------
class WorkflowDefinitionForm(forms.ModelForm):
    class Meta:
        model = WorkflowDefinition
        fields = ("name", "version", "description", "spec", "is_active", "on_failure")
        help_texts = {
            "spec": '{"initialTask": {"type": …, "payload": {…}}, "transitions": {"step": '
            '{"type": …, "after": "initial", "on": "success"}}}',
        }

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        candidate = WorkflowDefinition(**{f: cleaned.get(f) for f in self.Meta.fields})
        candidate.on_failure = candidate.on_failure or "fail"
        try:
            definitions.check_definition(candidate)
        except InvalidWorkflow as exc:
            field = exc.field if exc.field in self.Meta.fields else "spec"
            self.add_error(field, str(exc))
        return cleaned


@admin.register(WorkflowDefinition)
class WorkflowDefinitionAdmin(RoleAdmin):
    """Viewers read definitions; operators create and change them (checked, audited); admins
    delete them."""

    paginator = admin.ModelAdmin.paginator  # a few hundred rows at most
    show_full_result_count = True
    form = WorkflowDefinitionForm
    list_display = ("name", "version", "is_active", "on_failure", "updated_at")
    list_filter = ("is_active", "on_failure")
    search_fields = ("name",)
    readonly_fields = ("created_at", "updated_at")

    def has_add_permission(self, request) -> bool:
        return self.has_operate_permission(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self.has_operate_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_destroy_permission(request)

    def save_model(self, request, obj, form, change):
        fields = {f: getattr(obj, f) for f in definitions.FIELDS}
        action = "workflow_definition.update" if change else "workflow_definition.create"
        with audited(
            request.user,
            action,
            source="admin",
            target_type="workflow_definition",
            target_id=obj.pk or "",
            name=obj.name,
        ) as extra:
            if change:
                saved = definitions.update_definition(obj.pk, **fields)
            else:
                saved = definitions.create_definition(**fields)
            extra["target_id"] = saved.pk
        obj.pk, obj.created_at, obj.updated_at = saved.pk, saved.created_at, saved.updated_at

    def delete_model(self, request, obj):
        with audited(
            request.user,
            "workflow_definition.delete",
            source="admin",
            target_type="workflow_definition",
            target_id=obj.pk,
            name=obj.name,
        ):
            definitions.delete_definition(obj.pk)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)
