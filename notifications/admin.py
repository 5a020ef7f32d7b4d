from django.contrib import admin

from .models import Notification, NotificationPreference


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "user_id", "type", "created_at", "read_at"]
    list_filter = ["type"]
    search_fields = ["user_id", "message"]
    readonly_fields = [f.name for f in Notification._meta.fields]


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user_id", "type", "channels", "email"]
    search_fields = ["user_id", "email"]
