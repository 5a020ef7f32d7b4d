from django.apps import AppConfig


class DjangoTasksConfig(AppConfig):
    name = "taskhub.contrib.django_tasks"
    label = "taskhub_django_tasks"
    verbose_name = "taskhub backend for Django's Tasks framework"

    def ready(self) -> None:
        from taskhub.engine.signals import tasks_finished

        from .runner import register_configured_backends, send_task_finished

        register_configured_backends()
        tasks_finished.connect(send_task_finished, dispatch_uid="taskhub_django_tasks_finished")
