"""Actions on executions: cancel (revoke) and terminate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.utils import timezone

from taskboard.models import ACTIVE_STATES, TaskExecution
from taskboard.services.manager import TaskManager


def execution_can_control(*, execution: TaskExecution, user: Any) -> bool:
    """Owners and staff may cancel; only staff may terminate a running task."""
    return bool(user.is_staff or (execution.user_id is not None and execution.user_id == user.pk))


def execution_cancel(*, execution: TaskExecution, by: Any, terminate: bool = False) -> bool:
    """Ask Celery to revoke the task (terminate: kill it if running), through TaskManager.
    Records who asked and when.

    False when the task had already finished: nothing to cancel.
    """
    if not execution_can_control(execution=execution, user=by):
        raise PermissionDenied
    if terminate and not by.is_staff:
        raise PermissionDenied
    now = timezone.now()
    rows = TaskExecution.objects.filter(pk=execution.pk)
    if not executions_record_cancel_request(rows=rows, by=by, now=now):
        return False
    TaskManager().revoke(execution.task_id, terminate=terminate)
    execution.cancel_requested_by = by
    execution.cancel_requested_at = now
    return True


def executions_record_cancel_request(
    *, rows: QuerySet[TaskExecution], by: Any, now: datetime
) -> int:
    """Record that `by` asked at `now` to cancel those of rows still queued or running (one
    UPDATE); how many. Finished ones are left as they are."""
    return rows.filter(state__in=ACTIVE_STATES).update(
        cancel_requested_by=by, cancel_requested_at=now, updated_at=now
    )
