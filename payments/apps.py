from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payments and Safe transactions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # CLI subcommands (taskhub sandbox, taskhub devchain) and the sandbox process for `up`.
        from . import commands  # noqa: F401
