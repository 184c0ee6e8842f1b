"""The seed's Python API, for SGM module developers.

from taskboard.utils import track_task, report_progress

@shared_task(bind=True)
@track_task("nomina.consolidar", "nomina", "Consolidar nómina")
def consolidar_nomina(self, periodo_id, user_id):
    for i, empleado in enumerate(empleados, 1):
        ...
        report_progress(i, len(empleados), f"Empleado {i}")
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from taskboard.models import TaskExecution
from taskboard.selectors.executions import user_task_list
from taskboard.selectors.stats import ModuleStats, module_stats
from taskboard.tracking import (
    TaskCancelled,
    finish_task,
    flush_writes,
    report_progress,
    start_task_tracking,
    track_task,
    update_task_progress,
)
from taskboard.tracking.ownership import launched_by

__all__ = [
    "ModuleStats",
    "TaskCancelled",
    "finish_task",
    "flush_writes",
    "get_module_stats",
    "get_user_tasks",
    "launched_by",
    "report_progress",
    "start_task_tracking",
    "track_task",
    "update_task_progress",
]


def get_user_tasks(user: Any, module: str | None = None) -> QuerySet[TaskExecution]:
    """The user's own executions, newest first."""
    return user_task_list(user=user, module=module)


def get_module_stats(module: str, days: int = 7) -> ModuleStats:
    """Counts per state, success rate, average/p50/p95 duration and running now."""
    return module_stats(module=module, days=days)
