"""Plain admin for webhooks. Changes go through the service functions; secrets never show."""

from django.contrib import admin, messages

from . import services
from .models import DeliveryAttempt, WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ("url", "event_types", "active", "disabled_reason", "created_at")
    list_filter = ("active",)
    search_fields = ("url", "description")
    fields = ("url", "event_types", "description", "active", "disabled_reason", "created_at")
    readonly_fields = ("disabled_reason", "created_at")
    actions = ("enable", "disable")

    def save_model(self, request, obj, form, change):
        if change:
            services.update_endpoint(
                obj.id, url=obj.url, event_types=obj.event_types,
                description=obj.description, active=obj.active,
            )  # fmt: skip
            return
        endpoint, secret = services.create_endpoint(
            obj.url, obj.event_types, description=obj.description, active=obj.active
        )
        obj.pk = endpoint.pk
        # The only time the secret is shown.
        messages.warning(request, f"Secret of the new endpoint (shown once): {secret}")

    def delete_model(self, request, obj):
        services.delete_endpoint(obj.id)

    @admin.action(description="Enable selected endpoints")
    def enable(self, request, queryset):
        for endpoint in queryset:
            services.enable_endpoint(endpoint.id)

    @admin.action(description="Disable selected endpoints")
    def disable(self, request, queryset):
        for endpoint in queryset:
            services.disable_endpoint(endpoint.id)


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ("number", "at", "response_code", "duration", "error", "response_body")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("event_type", "endpoint", "status", "attempts", "last_response_code",
                    "next_attempt_at", "created_at")  # fmt: skip
    list_filter = ("status", "event_type", "endpoint")
    search_fields = ("id", "message_id", "event_type")
    inlines = [DeliveryAttemptInline]
    actions = ("redeliver",)
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Redeliver selected deliveries now")
    def redeliver(self, request, queryset):
        for delivery in queryset:
            services.redeliver(delivery.id)
        self.message_user(request, f"redelivering {queryset.count()} deliveries")


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(admin.ModelAdmin):
    list_display = ("delivery", "number", "at", "response_code", "duration", "error")
    list_filter = ("response_code",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
