"""Minimal admin registration; the operator console is built on top of this."""

from django.contrib import admin

from .models import DeadLetter, QueueState, Task, TaskEvent, TaskLog, WorkerProcess

for model in (Task, TaskEvent, TaskLog, DeadLetter, QueueState, WorkerProcess):
    admin.site.register(model)
