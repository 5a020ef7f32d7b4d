"""Building blocks of the operator console: role-based admin permissions, a paginator that never
counts millions of rows, confirmed, audited actions, and what the task and workflow pages share
(status badges, JSON display, the created filter, exact search)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from ..errors import TaskhubError
from ..models import TaskStatus
from .audit import audited
from .roles import ADMIN, OPERATOR, VIEWER, has_role

#: Rows one admin action acts on at most ("select all" over millions stays bounded).
MAX_ACTION_ROWS = 1000


class EstimatedCountPaginator(Paginator):
    """Counts at most ``cap`` + 1 rows (a bounded subquery); an unfiltered list on PostgreSQL
    uses the planner's row estimate instead. Never a full ``COUNT(*)`` of a large table."""

    cap = 10_000

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        if connection.vendor == "postgresql" and not rows.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [rows.model._meta.db_table],
                )
                found = cursor.fetchone()
            if found and found[0] > self.cap:
                return int(found[0])
        return rows[: self.cap + 1].count()


class RoleAdmin(admin.ModelAdmin):
    """Read-only for everyone; what a user may *do* comes from their role, through actions.

    Actions declare ``permissions=["operate"]`` (operator) or ``["destroy"]`` (admin).
    """

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50

    def has_module_permission(self, request) -> bool:
        return has_role(request.user, VIEWER)

    def has_view_permission(self, request, obj=None) -> bool:
        return has_role(request.user, VIEWER)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_operate_permission(self, request) -> bool:
        return has_role(request.user, OPERATOR)

    def has_destroy_permission(self, request) -> bool:
        return has_role(request.user, ADMIN)


def confirm_then(
    modeladmin: admin.ModelAdmin,
    request,
    queryset,
    *,
    action: str,
    verb: str,
    perform: Callable[[object], object],
    target_type: str,
    target_id: Callable[[object], object] = lambda obj: obj.pk,
):
    """Show a confirmation page first; on confirmation run ``perform`` on each row, each one
    recorded in the audit log, and report what was done and what was refused."""
    rows = list(queryset[:MAX_ACTION_ROWS])
    if request.POST.get("confirmed") != "yes":
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": f"Confirm: {verb}",
            "verb": verb,
            "opts": modeladmin.model._meta,
            "objects": rows[:100],
            "count": len(rows),
            "more": len(rows) - 100,
            "capped": len(rows) >= MAX_ACTION_ROWS,
            "action": request.POST.get("action", ""),
            "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "index": request.POST.get("index", "0"),
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/taskhub/confirm_action.html", context)
    done, refused = 0, []
    for row in rows:
        try:
            with audited(
                request.user,
                action,
                source="admin",
                target_type=target_type,
                target_id=target_id(row),
            ):
                perform(row)
            done += 1
        except TaskhubError as exc:  # the service refused (bad transition, gone, invalid)
            refused.append(str(exc))
    if done:
        modeladmin.message_user(request, f"{verb}: done for {done}.", messages.SUCCESS)
    if refused:
        shown = "; ".join(refused[:5]) + (" …" if len(refused) > 5 else "")
        modeladmin.message_user(request, f"{len(refused)} refused: {shown}", messages.WARNING)
    return None


# -- shared by the task and workflow pages --------------------------------------------------------

#: Each status's hue: a class (``th-hue-<hue>``) whose colours, light and dark, are variables of
#: console.css — no colour is written here, so the admin's theme (dark or light) applies.
STATUS_HUES = {
    TaskStatus.PENDING: "grey",
    TaskStatus.QUEUED: "blue",
    TaskStatus.RUNNING: "purple",
    TaskStatus.RETRYING: "orange",
    TaskStatus.COMPLETED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.CANCELLED: "slate",
    TaskStatus.BLOCKED: "teal",
    TaskStatus.SKIPPED: "silver",
}
SHOWN_HISTORY = 500


def hue_badge(label: str, hue: str):
    return format_html('<span class="th-badge th-hue-{}">{}</span>', hue, label)


def status_badge(status: str):
    return hue_badge(status, STATUS_HUES.get(status, "grey"))


def pretty_json(value):
    return format_html('<pre class="th-json">{}</pre>', json.dumps(value, indent=2, default=str))


class CreatedFilter(admin.SimpleListFilter):
    title, parameter_name = "created", "created"
    PERIODS = {
        "1h": dt.timedelta(hours=1),
        "24h": dt.timedelta(days=1),
        "7d": dt.timedelta(days=7),
        "30d": dt.timedelta(days=30),
    }

    def lookups(self, request, model_admin):
        return [
            ("1h", "last hour"),
            ("24h", "last 24 hours"),
            ("7d", "last 7 days"),
            ("30d", "last 30 days"),
        ]

    def queryset(self, request, queryset):
        period = self.PERIODS.get(self.value() or "")
        return queryset.filter(created_at__gte=timezone.now() - period) if period else queryset


def exact_search(queryset, term: str, fields: tuple[str, ...]):
    """Exact matches on indexed columns instead of the admin's LIKE '%…%' scans."""
    term = term.strip()
    if not term:
        return queryset
    condition = Q()
    try:
        condition |= Q(pk=uuid.UUID(term)) if "id" in fields else Q()
    except ValueError:
        pass
    for field in fields:
        if field != "id":
            condition |= Q(**{field: term})
    return queryset.filter(condition) if condition else queryset.none()
