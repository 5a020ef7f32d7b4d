"""Minimal admin registration; the operator console is built on top of this."""

from django.contrib import admin

from .models import DeadLetter, QueueState, Task, TaskEvent, TaskLog, WorkerProcess

for model in (Task, TaskEvent, TaskLog, DeadLetter, QueueState, WorkerProcess):
    admin.site.register(model)


# -- schedules: edits go through taskhub.schedules, which recomputes the next run -----------------
from . import schedules as schedule_services  # noqa: E402
from .models import ScheduleRun, TaskSchedule  # noqa: E402


class ScheduleRunInline(admin.TabularInline):
    model = ScheduleRun
    extra = 0
    can_delete = False
    fields = ("slot", "trigger", "task_id", "status", "error")
    readonly_fields = fields
    ordering = ("-slot",)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(TaskSchedule)
class TaskScheduleAdmin(admin.ModelAdmin):
    list_display = ("name", "task_name", "when", "timezone", "enabled", "next_run_at",
                    "last_run_at", "last_status", "source")  # fmt: skip
    list_filter = ("enabled", "kind", "source", "last_status")
    search_fields = ("name", "task_name")
    fields = ("name", "task_name", "payload", "cron", "interval_seconds", "run_at", "timezone",
              "enabled", "source", "next_run_at", "last_run_at", "last_status")  # fmt: skip
    readonly_fields = ("source", "next_run_at", "last_run_at", "last_status")
    inlines = [ScheduleRunInline]
    actions = ("run_now", "enable", "disable")

    def save_model(self, request, obj, form, change):
        timing = dict(cron=obj.cron or None, interval=obj.interval_seconds, run_at=obj.run_at)
        if change:
            changes = {"enabled": obj.enabled}
            if obj.source != "code":
                changes.update(task=obj.task_name, payload=obj.payload, timezone=obj.timezone,
                               **timing)  # fmt: skip
            saved = schedule_services.update_schedule(obj.pk, **changes)
        else:
            saved = schedule_services.create_schedule(
                obj.name, obj.task_name, payload=obj.payload, timezone_name=obj.timezone,
                enabled=obj.enabled, **timing,
            )  # fmt: skip
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        schedule_services.delete_schedule(obj.pk)

    @admin.action(description="Run selected schedules now")
    def run_now(self, request, queryset):
        for row in queryset:
            schedule_services.run_now(row.pk)

    @admin.action(description="Enable selected schedules")
    def enable(self, request, queryset):
        for row in queryset:
            schedule_services.enable_schedule(row.pk)

    @admin.action(description="Disable selected schedules")
    def disable(self, request, queryset):
        for row in queryset:
            schedule_services.disable_schedule(row.pk)


@admin.register(ScheduleRun)
class ScheduleRunAdmin(admin.ModelAdmin):
    list_display = ("schedule", "slot", "trigger", "task_id", "status")
    list_filter = ("status", "trigger", "schedule")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
