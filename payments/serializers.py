"""How payments and Safe transactions look in the API. No secret is ever part of them."""

from __future__ import annotations

from rest_framework import serializers

from taskhub.console.services import correlated_tasks

from .models import Payment, ProviderEvent, SafeConfirmation, SafeTransaction


class SafeConfirmationSerializer(serializers.ModelSerializer):
    class Meta:
        model = SafeConfirmation
        fields = ["owner", "signature", "signature_type", "created_at"]


class SafeTransactionSerializer(serializers.ModelSerializer):
    confirmations_list = SafeConfirmationSerializer(source="confirmation_set", many=True)
    transaction = serializers.SerializerMethodField()

    class Meta:
        model = SafeTransaction
        fields = [
            "id",
            "user_id",
            "payment",
            "safe_address",
            "chain_id",
            "transaction",
            "safe_tx_hash",
            "backend",
            "status",
            "failure_reason",
            "eth_tx_hash",
            "block_number",
            "confirmations",
            "confirmations_list",
            "execute_task_id",
            "created_at",
            "updated_at",
            "executed_at",
        ]

    def get_transaction(self, row: SafeTransaction) -> dict:
        return {
            "to": row.to,
            "value": str(row.value),
            "data": row.data,
            "operation": row.operation,
            "safeTxGas": str(row.safe_tx_gas),
            "baseGas": str(row.base_gas),
            "gasPrice": str(row.gas_price),
            "gasToken": row.gas_token,
            "refundReceiver": row.refund_receiver,
            "nonce": str(row.nonce),
        }


class PaymentSerializer(serializers.ModelSerializer):
    amount = serializers.SerializerMethodField()

    class Meta:
        model = Payment
        fields = [
            "id",
            "user_id",
            "amount",
            "currency",
            "payment_method_id",
            "metadata",
            "provider",
            "provider_payment_id",
            "status",
            "failure_reason",
            "processing_task_id",
            "blockchain_task_id",
            "workflow_run_id",
            "refund_id",
            "created_at",
            "updated_at",
            "completed_at",
            "refunded_at",
        ]

    def get_amount(self, payment: Payment) -> str:
        from .money import format_amount

        return format_amount(payment.amount, payment.currency)


class PaymentDetailSerializer(PaymentSerializer):
    safe_transaction = serializers.SerializerMethodField()
    tasks = serializers.SerializerMethodField()

    class Meta(PaymentSerializer.Meta):
        fields = [*PaymentSerializer.Meta.fields, "safe_transaction", "tasks"]

    def get_safe_transaction(self, payment: Payment) -> dict | None:
        row = SafeTransaction.objects.filter(payment=payment).first()
        return SafeTransactionSerializer(row).data if row else None

    def get_tasks(self, payment: Payment) -> list[dict]:
        rows = correlated_tasks(payment.correlation_id)
        return [{"id": str(t.id), "name": t.name, "status": t.status} for t in rows]


class ProviderEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProviderEvent
        fields = [
            "id",
            "provider",
            "event_id",
            "provider_payment_id",
            "signature_valid",
            "received_at",
            "processed_at",
        ]
