"""Admin pages for KYC cases, users' statuses and provider callbacks; "re-run the check" is an
action recorded in the operator audit log (``taskhub.console.audit``)."""

from django.contrib import admin, messages

from taskhub.console.audit import audited

from . import services
from .models import KycCase, KycProviderEvent, UserKycStatus


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(KycCase)
class KycCaseAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "user_id",
        "provider",
        "document_type",
        "status",
        "external_id",
        "created_at",
    ]
    list_filter = ["status", "provider", "document_type"]
    search_fields = ["id", "user_id", "external_id"]
    actions = ["rerun_check"]

    @admin.action(description="Re-run the KYC check")
    def rerun_check(self, request, queryset):
        for case in queryset:
            try:
                with audited(
                    request.user,
                    "kyc_case.rerun",
                    source="admin",
                    target_type="kyc_case",
                    target_id=case.pk,
                ) as extra:
                    task = services.rerun_check(case)
                    extra.update(task_id=str(task.id))
            except Exception as exc:
                self.message_user(request, f"{case}: re-run failed: {exc}", messages.ERROR)
                continue
            self.message_user(request, f"{case}: re-run scheduled (task {task.id})")


@admin.register(UserKycStatus)
class UserKycStatusAdmin(ReadOnlyAdmin):
    list_display = ["user_id", "status", "case", "updated_at"]
    list_filter = ["status"]
    search_fields = ["user_id"]


@admin.register(KycProviderEvent)
class KycProviderEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "provider", "external_id", "received_at", "processed_at"]
    list_filter = ["provider"]
    search_fields = ["event_id", "external_id"]
