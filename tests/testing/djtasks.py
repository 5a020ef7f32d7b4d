"""A Django Tasks-framework function (django.tasks on Django 6, the django-tasks backport on
5.2), enqueued through taskhub's backend in immediate mode."""

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task


@task()
def add(a: int, b: int) -> int:
    return a + b
