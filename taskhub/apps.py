from django.apps import AppConfig
from django.core import checks
from django.utils.module_loading import autodiscover_modules

from .conf import check_namespaces, taskhub_settings
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

    def ready(self) -> None:
        # taskhub's modules are imported here, not at the top: Django imports this module
        # before any model can load, and these reach the models.
        from .workflows.hooks import register as register_workflow_hooks

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

        # Unknown keys and wrong types in every settings namespace (taskhub's and the apps').
        checks.register(check_namespaces, checks.Tags.compatibility)

        if taskhub_settings.ENABLE_SCHEDULING:
            # `taskhub up` runs the scheduler as its own process, never inside web workers.
            EXTRA_PROCESSES.setdefault("scheduler", ["runscheduler"])

        register_check("scheduler", scheduler_check)

        # Django's admin discovers `<app>.admin` modules; taskhub's admin pages live with the
        # other operator surfaces (taskhub/console/), so importing them registers them.
        from .console import admin, workflow_admin  # noqa: F401
