from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.utils.module_loading import autodiscover_modules

from .conf import DEFAULT_DRAMATIQ_BROKER, check_namespaces, taskhub_settings
from .engine import hooks


def _wake_in_process(queues: tuple[str, ...]) -> None:
    # Imported on use: only while TASKHUB["TESTING"] is set (a project's tests, docs/testing.md);
    # production processes never import the test support.
    from .testing import wake_in_process

    wake_in_process(queues)


class TaskhubConfig(AppConfig):
    name = "taskhub"
    verbose_name = "taskhub"
    default_auto_field = "django.db.models.BigAutoField"

    def __init__(self, app_name, app_module) -> None:
        super().__init__(app_name, app_module)
        # A project need not configure django-dramatiq: taskhub puts its own DRAMATIQ_BROKER
        # (taskhub.conf) in the settings when the project has none. It must be there before
        # django_dramatiq's app config is created — that builds the broker, and without the
        # setting builds its RabbitMQ default, whose middleware list fails to import on
        # dramatiq 2 — so the install docs list taskhub first (docs/settings.md). Where that
        # default does load, ready() replaces it (engine.broker.install_default_broker).
        if not hasattr(settings, "DRAMATIQ_BROKER"):
            settings.DRAMATIQ_BROKER = DEFAULT_DRAMATIQ_BROKER

    def ready(self) -> None:
        # taskhub's modules are imported here, not at the top: Django imports this module
        # before any model can load, and these reach the models.
        from .engine.broker import install_default_broker
        from .engine.checks import check_broker, check_sqlite, check_task_settings
        from .workflows.hooks import register as register_workflow_hooks

        # Before any actor is declared (autodiscover below): an actor binds to the global broker.
        install_default_broker()

        # First, before anything can run: the engine reaches the workflows layer only through
        # hooks it registers (settling steps when tasks end, the lifeline's reconciliation, a
        # step's context: engine/hooks.py), and in testing mode a dispatcher wake-up goes to
        # the test support instead of Redis.
        register_workflow_hooks()
        hooks.register(wake_in_process=_wake_in_process)

        # Every process (web, dispatcher, workers) must know every task type, so that scheduling
        # validates against the same registry the workers run from.
        autodiscover_modules("tasks")

        from .cli.launcher import EXTRA_PROCESSES
        from .console.health import register_check, scheduler_check
        from .engine.signals import worker_started, worker_stopping
        from .scheduler import embedded as embedded_scheduler

        # Unknown keys and wrong types in every settings namespace (taskhub's and the apps').
        checks.register(check_namespaces, checks.Tags.compatibility)
        # The broker, the Redis and SQLite (ids and hints in docs/settings.md).
        checks.register(check_broker, checks.Tags.compatibility)
        checks.register(check_sqlite, checks.Tags.compatibility)
        # Task settings taskhub cannot keep: out of range, or PERSIST_TASKS=False.
        checks.register(check_task_settings, checks.Tags.compatibility)

        if taskhub_settings.ENABLE_SCHEDULING and not taskhub_settings.EMBEDDED_SCHEDULER:
            # `taskhub up` runs the scheduler as its own process, never inside web workers.
            EXTRA_PROCESSES.setdefault("scheduler", ["runscheduler"])
        # With EMBEDDED_SCHEDULER on, worker processes fire the crons (taskhub.scheduler.embedded).
        worker_started.connect(embedded_scheduler.start_embedded, dispatch_uid="taskhub-crons")
        worker_stopping.connect(embedded_scheduler.stop_embedded, dispatch_uid="taskhub-crons")

        register_check("scheduler", scheduler_check)

        # Django's admin discovers `<app>.admin` modules; taskhub's admin pages live with the
        # other operator surfaces (taskhub/console/), so importing them registers them.
        from .console import admin, workflow_admin  # noqa: F401
