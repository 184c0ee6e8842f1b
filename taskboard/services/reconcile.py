"""Reconciliation: a task that was running on a worker that is gone is LOST, not running.

LOST is written like every other state change: through the recorder's conditional UPDATE
(the state rule in its WHERE clause, so a task that finished meanwhile stays finished), and
announced the same way (execution_changed, executions_finished).
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from taskboard.models import RUNNING_STATES, TaskExecution, TaskState, WorkerHeartbeat
from taskboard.tracking.recorder import Write, apply_many

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
        # Both the query and, checked again, each UPDATE (the recorder's conditions).
        conditions: dict[str, object] = {"worker": beat.hostname}
        if not gone:  # alive: only what an earlier process under this name was running
            conditions["started_at__lt"] = beat.started_at
        marked += _mark(conditions, now=now, worker=beat.hostname)
    return marked


def _mark(conditions: dict[str, object], *, now: datetime, worker: str) -> int:
    fields = {
        "finished_at": now,
        "exception_type": "WorkerLostError",
        "exception_message": f"Worker {worker} went away while the task was running.",
    }
    marked = 0
    for batch in TaskExecution.objects.running().filter(**conditions).batches(size=BATCH):
        writes = [
            Write(
                ("pk", pk),
                TaskState.LOST,
                dict(fields),
                # Checked again in the UPDATE itself: a task that finished, or moved on to
                # another worker meanwhile, keeps its state.
                conditions=dict(conditions),
                from_states=RUNNING_STATES,
            )
            for (pk,) in batch
        ]
        marked += len(apply_many(writes))
    return marked
