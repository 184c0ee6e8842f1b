"""Everything that runs inside Celery workers and publishing processes.

The package imports taskboard's models, conf and signals only (a test walks its imports):
never selectors, services, views or HTTP code. Importing it connects the signal handlers.

These names are its public API, as the seed documented them (also in taskboard.utils).
"""

from __future__ import annotations

from taskboard.tracking import handlers as handlers
from taskboard.tracking.api import (
    execution_lookup,
    finish_task,
    flush_writes,
    report_progress,
    start_task_tracking,
    update_task_progress,
)
from taskboard.tracking.registry import (
    TaskSpec,
    meta_for,
    sync_template,
    sync_templates,
    track_task,
)
from taskboard.tracking.running import TaskCancelled

__all__ = [
    "TaskCancelled",
    "TaskSpec",
    "execution_lookup",
    "finish_task",
    "flush_writes",
    "handlers",
    "meta_for",
    "report_progress",
    "start_task_tracking",
    "sync_template",
    "sync_templates",
    "track_task",
    "update_task_progress",
]
