"""Routes of the REST API, mounted under ``/api/``."""

from django.urls import path

from ...builtins.queue_api import installed_kinds
from .. import stream
from . import analysis, docs, files, health, schedules, task_export, task_queue, tasks, workflows

_queue = "task-queue/<str:queue_name>"

urlpatterns = [
    path("tasks", tasks.TaskListCreate.as_view(), name="task-list"),
    path("tasks/bulk", tasks.TaskBulkCreate.as_view(), name="task-bulk"),
    path("tasks/export", task_export.TaskExport.as_view(), name="task-export"),
    # Before tasks/<task_id>/…, which "actions/retry" would match too.
    *[
        path(f"tasks/actions/{action}", tasks.bulk_action_view(action), name=f"task-bulk-{action}")
        for action in ("retry", "cancel", "delete")
    ],
    path("tasks/<str:task_id>", tasks.TaskDetail.as_view(), name="task-detail"),
    path("tasks/<str:task_id>/events", tasks.TaskEvents.as_view(), name="task-events"),
    path("tasks/<str:task_id>/logs", tasks.TaskLogs.as_view(), name="task-logs"),
    path("tasks/<str:task_id>/retry", tasks.TaskRetry.as_view(), name="task-retry"),
    path("tasks/<str:task_id>/cancel", tasks.TaskCancel.as_view(), name="task-cancel"),
    path("schedules", schedules.ScheduleListCreate.as_view(), name="schedule-list"),
    path("schedules/<str:name>", schedules.ScheduleDetail.as_view(), name="schedule-detail"),
    path(
        "schedules/<str:name>/run-now", schedules.ScheduleRunNow.as_view(), name="schedule-run-now"
    ),
    path("workflows", workflows.WorkflowListCreate.as_view(), name="workflow-list"),
    path("workflows/<str:run_id>", workflows.WorkflowDetail.as_view(), name="workflow-detail"),
    path(
        "workflows/<str:run_id>/cancel", workflows.WorkflowCancel.as_view(), name="workflow-cancel"
    ),
    path("workflows/<str:run_id>/retry", workflows.WorkflowRetry.as_view(), name="workflow-retry"),
    *[
        path(
            f"workflows/<str:run_id>/compensation/{verb}",
            workflows.compensation_view(verb),
            name=f"workflow-compensation-{verb}",
        )
        for verb in ("retry", "skip", "resolve")
    ],
    path(
        "workflow-definitions",
        workflows.DefinitionListCreate.as_view(),
        name="workflow-definition-list",
    ),
    path(
        "workflow-definitions/<str:definition_id>",
        workflows.DefinitionDetail.as_view(),
        name="workflow-definition-detail",
    ),
    path("health", health.Health.as_view(), name="health"),
    path("metrics", analysis.Metrics.as_view(), name="metrics"),
    path("metrics/timeseries", analysis.Timeseries.as_view(), name="metrics-timeseries"),
    path("failures", analysis.Failures.as_view(), name="failures"),
    path("task-queue/health", task_queue.Health.as_view(), name="task-queue-health"),
    path("task-queue/stats", task_queue.QueueStats.as_view(), name="task-queue-stats"),
    path(
        "task-queue/status/<str:queue_name>/<str:job_id>",
        task_queue.JobStatus.as_view(),
        name="task-queue-status",
    ),
    *[
        path(f"task-queue/{kind}", task_queue.enqueue_view(kind), name=f"task-queue-{kind}")
        # Only the kinds whose task is installed: two belong to this repository's domain apps.
        for kind in installed_kinds()
    ],
    path(f"{_queue}/failed", task_queue.FailedJobs.as_view(), name="task-queue-failed"),
    path(f"{_queue}/pause", task_queue.PauseQueue.as_view(), name="task-queue-pause"),
    path(f"{_queue}/resume", task_queue.ResumeQueue.as_view(), name="task-queue-resume"),
    path(f"{_queue}/clear", task_queue.ClearQueue.as_view(), name="task-queue-clear"),
    path(f"{_queue}/retry/<str:job_id>", task_queue.RetryJob.as_view(), name="task-queue-retry"),
    path(f"{_queue}/remove/<str:job_id>", task_queue.RemoveJob.as_view(), name="task-queue-remove"),
    path(f"{_queue}/jobs/<str:job_id>", task_queue.Job.as_view(), name="task-queue-job"),
    path(
        f"{_queue}/dead-letters", task_queue.DeadLetters.as_view(), name="task-queue-dead-letters"
    ),
    path(
        f"{_queue}/dead-letters/<str:letter_id>",
        task_queue.DeadLetterRemove.as_view(),
        name="task-queue-dead-letter",
    ),
    path(
        f"{_queue}/dead-letters/<str:letter_id>/retry",
        task_queue.DeadLetterRetry.as_view(),
        name="task-queue-dead-letter-retry",
    ),
    path("images/<str:name>", files.ImageFile.as_view(), name="image-file"),
    path("events/stream", stream.event_stream, name="event-stream"),
    path("events/tickets", stream.EventTickets.as_view(), name="event-tickets"),
    path("schema/", docs.Schema.as_view(), name="schema"),
    path("docs/", docs.SwaggerUI.as_view(url_name="taskhub:schema"), name="swagger-ui"),
]
