from django.apps import AppConfig

from taskhub.engine.signals import tasks_finished


class DjangoTasksConfig(AppConfig):
    name = "taskhub.contrib.django_tasks"
    label = "taskhub_django_tasks"
    verbose_name = "taskhub backend for Django's Tasks framework"

    def ready(self) -> None:
        # Imported here: Django imports this module before any model can load.
        from .backend import register_configured_backends, send_task_finished

        register_configured_backends()
        tasks_finished.connect(send_task_finished, dispatch_uid="taskhub_django_tasks_finished")
