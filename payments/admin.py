"""Admin pages for payments, Safe transactions (with confirmations) and provider callbacks.

Read-only: statuses change only through the services. Actions call the same service functions
as the API and are recorded in the operator audit log (``taskhub.console.audit``). No page shows a
secret: provider secrets and keys live in settings, never in these rows.
"""

from django.contrib import admin, messages

from taskhub.console.audit import audited

from . import safe, services
from .models import Payment, ProviderEvent, SafeConfirmation, SafeTransaction


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _run(admin_view, request, queryset, label, action, *, audit_action: str):
    target_type = queryset.model._meta.model_name
    for obj in queryset:
        try:
            # Actions may call the provider or the chain: no transaction held open across them.
            with audited(
                request.user,
                audit_action,
                source="admin",
                target_type=target_type,
                target_id=obj.pk,
                atomic=False,
            ) as extra:
                outcome = action(obj)
                extra.update(outcome=str(outcome))
        except Exception as exc:  # report per row; one failure doesn't stop the others
            admin_view.message_user(request, f"{obj}: {label} failed: {exc}", messages.ERROR)
            continue
        admin_view.message_user(request, f"{obj}: {label}: {outcome}")


class SafeTransactionInline(admin.StackedInline):
    model = SafeTransaction
    fields = ["safe_address", "safe_tx_hash", "status", "eth_tx_hash", "block_number"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "user_id",
        "amount",
        "currency",
        "status",
        "provider_payment_id",
        "created_at",
    ]
    list_filter = ["status", "currency", "provider"]
    search_fields = ["id", "user_id", "provider_payment_id", "idempotency_key"]
    exclude = ["request_hash"]
    inlines = [SafeTransactionInline]
    actions = ["retry_payment", "reconcile_from_provider"]

    @admin.action(description="Retry processing (unfinished payments)")
    def retry_payment(self, request, queryset):
        _run(
            self,
            request,
            queryset,
            "retry",
            lambda p: f"task {services.retry_payment(p).id}",
            audit_action="payment.retry",
        )

    @admin.action(description="Reconcile from the provider")
    def reconcile_from_provider(self, request, queryset):
        _run(
            self,
            request,
            queryset,
            "reconcile from provider",
            services.reconcile_from_provider,
            audit_action="payment.reconcile",
        )


class SafeConfirmationInline(admin.TabularInline):
    model = SafeConfirmation
    fields = ["owner", "signature_type", "signature", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(SafeTransaction)
class SafeTransactionAdmin(ReadOnlyAdmin):
    list_display = [
        "safe_tx_hash",
        "safe_address",
        "nonce",
        "status",
        "eth_tx_hash",
        "confirmations",
        "created_at",
    ]
    list_filter = ["status", "chain_id", "backend"]
    search_fields = ["safe_tx_hash", "safe_address", "eth_tx_hash", "user_id"]
    inlines = [SafeConfirmationInline]
    actions = ["reconcile_from_chain"]

    @admin.action(description="Reconcile from the chain")
    def reconcile_from_chain(self, request, queryset):
        _run(
            self,
            request,
            queryset,
            "reconcile from chain",
            safe.reconcile_from_chain,
            audit_action="safe_transaction.reconcile",
        )


@admin.register(ProviderEvent)
class ProviderEventAdmin(ReadOnlyAdmin):
    list_display = [
        "event_id",
        "provider",
        "provider_payment_id",
        "signature_valid",
        "received_at",
        "processed_at",
    ]
    list_filter = ["provider", "signature_valid"]
    search_fields = ["event_id", "provider_payment_id"]
