"""How the API writes taskboard's data as JSON (times in ISO 8601, links to the detail pages)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.urls import reverse

from taskboard.models import TaskExecution
from taskboard.services.workers import (
    ActiveTask,
    FlowerInfo,
    SourceFailure,
    WorkerRecord,
    WorkersSnapshot,
)
from taskboard.templatetags.taskboard_text import flower_info_text, source_failure_text


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def execution_as_dict(execution: TaskExecution) -> dict[str, Any]:
    has_error = execution.exception_type or execution.exception_message
    return {
        "task_id": execution.task_id,
        "task_name": execution.task_name,
        "display_name": execution.display_name,
        "module": execution.module,
        "user": execution.user.get_username() if execution.user is not None else None,
        "state": execution.state,
        "progress": execution.progress,
        "progress_message": execution.progress_message,
        "worker": execution.worker,
        "queue": execution.queue,
        "retries": execution.retries,
        "created_at": iso(execution.created_at),
        "started_at": iso(execution.started_at),
        "finished_at": iso(execution.finished_at),
        "duration": execution.duration,
        "result_summary": execution.result_summary,
        "exception": (
            {"type": execution.exception_type, "message": execution.exception_message}
            if has_error
            else None
        ),
        "url": reverse("taskboard:detail", args=[execution.task_id]),
        "cancel_requested_at": iso(execution.cancel_requested_at),
    }


def active_task_as_dict(task: ActiveTask) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "name": task.name,
        "url": reverse("taskboard:detail", args=[task.task_id]),
    }


def worker_as_dict(worker: WorkerRecord) -> dict[str, Any]:
    return {
        "name": worker.name,
        "online": worker.online,
        "last_seen": iso(worker.last_seen),
        "active": [active_task_as_dict(task) for task in worker.active],
        "others_active": worker.others_active,
        "processed": worker.processed,
        "concurrency": worker.concurrency,
        "queues": list(worker.queues),
        "loadavg": None if worker.loadavg is None else list(worker.loadavg),
    }


def failure_as_dict(failure: SourceFailure) -> dict[str, Any]:
    return {
        "source": failure.source,
        "reason": failure.reason,
        "message": source_failure_text(failure),
    }


def snapshot_as_dict(snapshot: WorkersSnapshot) -> dict[str, Any]:
    return {
        "source": snapshot.source,
        "fetched_at": iso(snapshot.fetched_at),
        "workers": [worker_as_dict(worker) for worker in snapshot.workers],
        "queue_lengths": snapshot.queue_lengths,
        "fallbacks": [failure_as_dict(failure) for failure in snapshot.fallbacks],
    }


def flower_info_as_dict(info: FlowerInfo) -> dict[str, Any]:
    return {
        "configured": info.configured,
        "reachable": info.reachable,
        "url": info.url,
        "server": info.server,
        "version": None,  # Flower 2.x's API does not say its version
        "error": info.error or None,
        "message": flower_info_text(info),
        "workers": info.workers,
        "queues": info.queues,
        "source": info.source,
    }
