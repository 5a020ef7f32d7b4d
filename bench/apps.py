from django.apps import AppConfig


class BenchConfig(AppConfig):
    """The benchmark's own task types (bench/tasks.py), installed only by bench.settings."""

    name = "bench"
    label = "bench"
