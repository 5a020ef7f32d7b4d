from django.contrib import admin

from .models import EventSubscription, IndexedEvent, ReportedEvent


@admin.register(EventSubscription)
class EventSubscriptionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "network_id",
        "contract_address",
        "event_name",
        "next_block",
        "confirmations",
        "active",
        "last_indexed_at",
    ]
    list_filter = ["network_id", "active"]


@admin.register(IndexedEvent)
class IndexedEventAdmin(admin.ModelAdmin):
    list_display = ["id", "network_id", "event_name", "block_number", "tx_hash", "log_index"]
    list_filter = ["network_id", "event_name"]
    search_fields = ["tx_hash", "contract_address"]


@admin.register(ReportedEvent)
class ReportedEventAdmin(admin.ModelAdmin):
    list_display = ["id", "network_id", "contract_address", "event_name", "received_at"]
