"""Reconciliation: a task that was running on a worker that is gone is LOST, not running."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from taskboard.models import RUNNING_STATES, TaskExecution, TaskState, WorkerHeartbeat
from taskboard.signals import execution_changed, executions_finished_send

BATCH = 500


def executions_mark_lost(*, now: datetime | None = None) -> int:
    """Mark LOST every running execution whose worker stopped, went silent past the offline
    threshold, or restarted since the task started (a new process under the same name).

    Workers that never recorded a heartbeat are left alone: nothing says they are gone.
    Returns how many executions were marked.
    """
    now = now or timezone.now()
    marked = 0
    for beat in WorkerHeartbeat.objects.only("hostname", "started_at", "last_seen", "stopped_at"):
        gone = not beat.is_online(now=now)
        lost = Q(worker=beat.hostname, state__in=RUNNING_STATES)
        if not gone:  # alive: only what an earlier process under this name was running
            lost &= Q(started_at__lt=beat.started_at)
        marked += _mark(lost, now=now, worker=beat.hostname)
    return marked


def _mark(condition: Q, *, now: datetime, worker: str) -> int:
    marked = 0
    message = f"Worker {worker} went away while the task was running."
    fields = {
        "finished_at": now,
        "updated_at": now,
        "exception_type": "WorkerLostError",
        "exception_message": message,
    }
    while True:
        pks = list(TaskExecution.objects.filter(condition).values_list("pk", flat=True)[:BATCH])
        if not pks:
            return marked
        with transaction.atomic():
            # Locked and checked again: a task that finished meanwhile stays finished.
            updated = list(
                TaskExecution.objects.select_for_update()
                .filter(condition, pk__in=pks)
                .values_list("pk", flat=True)
            )
            TaskExecution.objects.filter(pk__in=updated).update(state=TaskState.LOST, **fields)
        for pk in updated:
            execution_changed.send(
                sender=TaskExecution, lookup=("pk", pk), state=TaskState.LOST, fields=fields
            )
        executions_finished_send([("pk", pk) for pk in updated])
        marked += len(updated)
        if len(pks) < BATCH:
            return marked
