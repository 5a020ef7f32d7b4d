from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from taskhub.engine.signals import tasks_finished
        from taskhub.scheduler.cron import EVERY_DAY_AT_MIDNIGHT, declare

        from . import commands  # noqa: F401  (registers `taskhub webhook-*` subcommands)
        from .conf import webhooks_settings
        from .events import connect_domain_signals, publish_task_events
        from .metrics import register as register_metrics

        # taskhub knows nothing of webhooks: its lifecycle events arrive through this signal.
        tasks_finished.connect(publish_task_events, dispatch_uid="webhooks.task_events")
        # Domain apps' events, by the dotted paths the project lists (no import of those apps).
        connect_domain_signals()
        register_metrics()  # webhook deliveries by outcome on /metrics
        declare(
            "webhooks.retry_due",
            "webhooks.retry_due",
            every=lambda: webhooks_settings.RETRY_INTERVAL_MINUTES * 60,
        )
        declare("webhooks.cleanup", "webhooks.cleanup", cron=EVERY_DAY_AT_MIDNIGHT)
