from django.apps import AppConfig


class BlockchainConfig(AppConfig):
    """Contract event indexing and reported chain events.

    Its own app (not inside payments) because it is contract-agnostic: payments, KYC or
    webhooks consume its events through the ``blockchain_event`` signal without importing it,
    and it imports none of them."""

    name = "blockchain"
    verbose_name = "blockchain events"
    default_auto_field = "django.db.models.BigAutoField"
