"""Checkpoints of the built-in data tasks: what a chunked task has committed so far."""

from __future__ import annotations

from django.db import models


class BatchCheckpoint(models.Model):
    """Progress of one ``data.sync`` or ``data.process_batch`` task, advanced in the same
    transaction as each chunk's work, so a retry resumes after the last committed chunk."""

    task_id = models.UUIDField(unique=True)
    task_name = models.CharField(max_length=200)
    #: chunks committed so far; the next chunk to run has this index
    chunks_done = models.PositiveIntegerField(default=0)
    #: items consumed so far (the offset of the next chunk's first item)
    offset = models.PositiveBigIntegerField(default=0)
    #: data.sync: the cursor of the next page ("" before the first page)
    cursor = models.TextField(blank=True, default="")
    finished = models.BooleanField(default=False)
    succeeded = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)
    total = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.task_name} {self.task_id}: {self.chunks_done} chunks"


class BatchChunk(models.Model):
    """One committed chunk. Unique by (task, index): a chunk can never be committed twice."""

    checkpoint = models.ForeignKey(BatchCheckpoint, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    offset = models.PositiveBigIntegerField()
    items = models.PositiveIntegerField()
    succeeded = models.PositiveIntegerField()
    failed = models.PositiveIntegerField()
    attempt = models.PositiveIntegerField()
    committed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["checkpoint", "index"], name="batch_chunk_once")
        ]
        ordering = ["checkpoint", "index"]

    def __str__(self) -> str:
        return f"chunk {self.index} of {self.checkpoint_id}"


class BatchItemError(models.Model):
    """An item a handler refused: which one (position and an excerpt) and why."""

    checkpoint = models.ForeignKey(BatchCheckpoint, on_delete=models.CASCADE, related_name="errors")
    position = models.PositiveBigIntegerField(help_text="0-based position in the input")
    item = models.JSONField(null=True, help_text="the item, or an excerpt of it")
    error = models.TextField()

    class Meta:
        ordering = ["checkpoint", "position"]

    def __str__(self) -> str:
        return f"item {self.position}: {self.error}"


class AnalyticsEvent(models.Model):
    """One event recorded by ``analytics.track``: one row per task (the task id is unique), so a
    retried attempt never counts an event twice."""

    task_id = models.UUIDField(unique=True)
    event = models.CharField(max_length=200)
    user_id = models.CharField(max_length=200, blank=True, default="")
    properties = models.JSONField(default=dict)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["event", "occurred_at"], name="analytics_event_time_idx")]

    def __str__(self) -> str:
        return f"{self.event} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"
