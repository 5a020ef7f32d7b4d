"""Webhooks in the operator console, with the console's roles, confirmations and audit log.

Viewers see endpoints, deliveries and attempts; operators redeliver and retry all failed
deliveries; admins create, edit, enable, disable and delete endpoints. Changes go through the
service functions. A secret is shown once, in the message after an endpoint's creation; no page
has a field that reads it.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from taskhub.console.admin_tools import RoleAdmin, confirm_then
from taskhub.console.audit import audited
from taskhub.console.roles import VIEWER, has_role

from . import services
from .models import DeliveryAttempt, DeliveryStatus, WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(RoleAdmin):
    paginator = admin.ModelAdmin.paginator  # few rows: exact counts are fine
    show_full_result_count = True
    list_display = ("url", "event_types", "active", "disabled_reason", "created_at")
    list_filter = ("active",)
    search_fields = ("url", "description")
    fields = ("url", "event_types", "description", "active", "disabled_reason", "created_at")
    readonly_fields = ("disabled_reason", "created_at")
    actions = ("enable", "disable")

    def has_add_permission(self, request) -> bool:
        return self.has_destroy_permission(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self.has_destroy_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_destroy_permission(request)

    def save_model(self, request, obj, form, change):
        action = "webhook_endpoint.update" if change else "webhook_endpoint.create"
        with audited(
            request.user,
            action,
            source="admin",
            target_type="webhook_endpoint",
            target_id=obj.pk if change else "",
        ) as extra:
            if change:
                services.update_endpoint(
                    obj.id,
                    url=obj.url,
                    event_types=obj.event_types,
                    description=obj.description,
                    active=obj.active,
                )
                return
            endpoint, secret = services.create_endpoint(
                obj.url, obj.event_types, description=obj.description, active=obj.active
            )
            extra.update(target_id=endpoint.pk)
        obj.pk = endpoint.pk
        # The only time the secret is shown.
        messages.warning(request, f"Secret of the new endpoint (shown once): {secret}")

    def delete_model(self, request, obj):
        with audited(
            request.user,
            "webhook_endpoint.delete",
            source="admin",
            target_type="webhook_endpoint",
            target_id=obj.pk,
        ):
            services.delete_endpoint(obj.id)

    def delete_queryset(self, request, queryset):
        for endpoint in queryset:
            self.delete_model(request, endpoint)

    @admin.action(description="Enable selected endpoints", permissions=["destroy"])
    def enable(self, request, queryset):
        return confirm_then(
            self,
            request,
            queryset,
            action="webhook_endpoint.enable",
            verb="Enable endpoints",
            target_type="webhook_endpoint",
            perform=lambda e: services.enable_endpoint(e.id),
        )

    @admin.action(description="Disable selected endpoints", permissions=["destroy"])
    def disable(self, request, queryset):
        return confirm_then(
            self,
            request,
            queryset,
            action="webhook_endpoint.disable",
            verb="Disable endpoints",
            target_type="webhook_endpoint",
            perform=lambda e: services.disable_endpoint(e.id),
        )


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ("number", "at", "response_code", "duration", "error", "response_body")
    readonly_fields = fields

    def has_view_permission(self, request, obj=None):
        return has_role(request.user, VIEWER)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


_FAILED = (DeliveryStatus.FAILED, DeliveryStatus.PERMANENTLY_FAILED)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(RoleAdmin):
    list_display = (
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "last_response_code",
        "next_attempt_at",
        "created_at",
    )
    list_filter = ("status", "event_type", "endpoint")
    search_fields = ("id", "message_id", "event_type")
    inlines = [DeliveryAttemptInline]
    actions = ("redeliver",)
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    change_list_template = "admin/webhooks/webhookdelivery/change_list.html"

    @admin.action(description="Redeliver selected deliveries now", permissions=["operate"])
    def redeliver(self, request, queryset):
        return confirm_then(
            self,
            request,
            queryset,
            action="webhook_delivery.redeliver",
            verb="Redeliver deliveries",
            target_type="webhook_delivery",
            perform=lambda d: services.redeliver(d.id),
        )

    def get_urls(self):
        return [
            path(
                "retry-all/",
                self.admin_site.admin_view(self.retry_all_view),
                name="webhooks_webhookdelivery_retry_all",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_operate": self.has_operate_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def retry_all_view(self, request):
        """Retry all failed deliveries: a confirmation page, then one audited service call."""
        if not self.has_operate_permission(request):
            raise PermissionDenied
        failed = WebhookDelivery.objects.filter(status__in=_FAILED, endpoint__active=True)
        changelist = reverse("admin:webhooks_webhookdelivery_changelist")
        if request.method == "POST" and request.POST.get("confirmed") == "yes":
            with audited(
                request.user,
                "webhook_delivery.retry_all",
                source="admin",
                target_type="webhook_delivery",
            ) as extra:
                extra.update(count=services.retry_all_failed())
            self.message_user(
                request, f"Retry all failed: {extra['count']} redelivering.", messages.SUCCESS
            )
            return HttpResponseRedirect(changelist)
        rows = list(failed.select_related("endpoint")[:101])
        context = {
            **self.admin_site.each_context(request),
            "title": "Confirm: Retry all failed deliveries",
            "verb": "Retry all failed deliveries",
            "opts": self.model._meta,
            "objects": rows[:100],
            "count": failed.count(),
            "more": failed.count() - 100,
            "capped": False,
            "selected": [],
        }
        return TemplateResponse(request, "admin/taskhub/confirm_action.html", context)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(RoleAdmin):
    list_display = ("delivery", "number", "at", "response_code", "duration", "error")
    list_filter = ("response_code",)
    exclude = ("request_headers",)  # signatures: derived from the secret, of no use to a reader
