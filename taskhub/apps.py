from django.apps import AppConfig


class TaskhubConfig(AppConfig):
    name = "taskhub"
    verbose_name = "taskhub"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The engine reaches the workflows layer only through hooks it registers: settling
        # steps when tasks end, the lifeline's reconciliation, a step's context (engine/hooks.py).
        from .workflows.hooks import register as register_workflow_hooks

        register_workflow_hooks()

        # Every process (web, dispatcher, workers) must know every task type, so that scheduling
        # validates against the same registry the workers run from.
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("tasks")

        from django.core import checks

        from .cli.launcher import EXTRA_PROCESSES
        from .conf import check_namespaces, taskhub_settings

        # Unknown keys and wrong types in every settings namespace (taskhub's and the apps').
        checks.register(check_namespaces, checks.Tags.compatibility)

        if taskhub_settings.ENABLE_SCHEDULING:
            # `taskhub up` runs the scheduler as its own process, never inside web workers.
            EXTRA_PROCESSES.setdefault("scheduler", ["runscheduler"])

        from django.db.models.signals import post_migrate

        from .console.roles import ensure_role_groups

        post_migrate.connect(ensure_role_groups, sender=self)

        from .console.health import register_check, scheduler_check

        register_check("scheduler", scheduler_check)

        # Django's admin discovers `<app>.admin` modules; taskhub's admin pages live with the
        # other operator surfaces (taskhub/console/), so importing them here registers them.
        from .console import admin  # noqa: F401
