from django.apps import AppConfig


class BuiltinsConfig(AppConfig):
    """The built-in tasks: e-mail, images, data sync and batches (their checkpoints need tables).

    Task modules are imported by this app's ``tasks`` module, which every process autodiscovers.
    """

    name = "taskhub.builtins"
    label = "taskhub_builtins"
    verbose_name = "taskhub built-in tasks"
    default_auto_field = "django.db.models.BigAutoField"
