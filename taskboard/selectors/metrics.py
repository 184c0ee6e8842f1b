"""What /metrics reports, read from the database (and this machine's spill folder) as plain
data: two queries, whatever the number of rows (aggregates, never a row per execution; the
heartbeats, a row per worker, carry each worker's tracking write figures).

Counters are the live rows' tally plus the deleted executions' totals
(DeletedExecutionTotal, added to as rows are deleted), read in one statement so a prune that
commits meanwhile is seen entirely or not at all: they never go back.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models.functions import Now

from taskboard.conf import conf
from taskboard.models import (
    DURATION_BUCKETS,
    QUEUED_STATES,
    RUNNING_STATES,
    TERMINAL_STATES,
    DeletedExecutionTotal,
    TaskExecution,
    TaskState,
    WorkerHeartbeat,
)
from taskboard.tracking.spill import ASIDE, CLAIMED, SUFFIX, spill_dir


@dataclass
class TaskCounts:
    """One (module, task_name)'s numbers.

    finished: how each task first ended, by state (a task marked LOST counts as LOST even
    when its worker's own final word came later: a counter never goes back); lost: marked
    LOST once; recovered: of those, the ones whose worker later said SUCCESS or FAILURE.
    buckets: how many durations were within each bound of DURATION_BUCKETS (cumulative, as
    Prometheus's `le`), duration_count: how many durations in all (+Inf), of tasks ended
    SUCCESS, FAILURE or REVOKED."""

    finished: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    recovered: int = 0
    running: int = 0
    queued: int = 0
    retrying: int = 0
    oldest_queued: datetime | None = None
    buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    duration_count: int = 0
    duration_sum: float = 0.0


@dataclass(frozen=True)
class WorkerTracking:
    """One worker's tracking writes as its last heartbeat said (tracking/figures.py): the
    sums over its processes, counters from the worker's start."""

    pending: int = 0  # writes not yet in the database
    lag: float = 0.0  # seconds since the oldest of them was queued (0: none)
    dropped: int = 0
    spilled: int = 0


@dataclass
class MetricsSnapshot:
    """Everything a scrape reports, taken at `taken_at` (Unix time) in `took` seconds."""

    tasks: dict[tuple[str, str], TaskCounts]
    workers_online: int
    queue_workers: dict[str, int]  # queue -> online workers consuming it
    spill_files: int  # this machine's spill files waiting to be replayed
    spill_bytes: int
    spill_unreadable: int  # set aside: never replayed without a person
    taken_at: float
    took: float
    queue_lengths: dict[str, int] | None = None  # from the worker panel's cached snapshot
    # hostname -> figures, of the workers online or stopped within WORKER_OFFLINE_AFTER
    tracking: dict[str, WorkerTracking] = field(default_factory=dict)


def metrics_read() -> MetricsSnapshot:
    """The numbers as they stand: one aggregate over executions and their deleted totals,
    one read of the recent heartbeats, a listing of the spill folder."""
    started = time.monotonic()
    tasks = task_counts()
    online, queue_workers, tracking = workers_online()
    files, size, unreadable = spill_files()
    return MetricsSnapshot(
        tasks=tasks,
        workers_online=online,
        queue_workers=queue_workers,
        spill_files=files,
        spill_bytes=size,
        spill_unreadable=unreadable,
        taken_at=time.time(),
        took=time.monotonic() - started,
        tracking=tracking,
    )


def task_counts() -> dict[tuple[str, str], TaskCounts]:
    live = TaskExecution.objects.all().tallies()
    deleted = DeletedExecutionTotal.objects.all().tallies()
    tasks: dict[tuple[str, str], TaskCounts] = {}
    # One statement: one snapshot of both tables on every database.
    for row in live.union(deleted, all=True):
        counts = tasks.setdefault((row["module"], row["task_name"]), TaskCounts())
        _add(counts, row)
    return tasks


def _whole(value: Any) -> int:
    """A count as the database gives it (a sum of bigints is a numeric on PostgreSQL)."""
    return int(value or 0)


def _add(counts: TaskCounts, row: dict[str, Any]) -> None:
    state = str(row["state"])
    executions = _whole(row["executions"])
    if state in RUNNING_STATES:
        counts.running += executions
    elif state in QUEUED_STATES:
        counts.queued += executions
        oldest = row["oldest"]
        if isinstance(oldest, datetime) and (
            counts.oldest_queued is None or oldest < counts.oldest_queued
        ):
            counts.oldest_queued = oldest
    elif state == TaskState.RETRY:
        counts.retrying += executions
    elif state in TERMINAL_STATES:
        lost = bool(row["lost"])
        counts.finished[TaskState.LOST if lost else state] += executions
        if lost:
            counts.lost += executions
            counts.recovered += executions if state != TaskState.LOST else 0
        # A LOST row's duration (if any) is not a run's: it enters once its worker's word
        # makes it SUCCESS or FAILURE, so no bucket ever loses a count.
        if state != TaskState.LOST:
            for index in range(len(DURATION_BUCKETS)):
                counts.buckets[index] += _whole(row[f"le_{index}"])
            counts.duration_count += _whole(row["duration_count"])
            counts.duration_sum += float(row["duration_sum"] or 0.0)


def workers_online() -> tuple[int, dict[str, int], dict[str, WorkerTracking]]:
    """Workers beating (by the database's clock) and not stopped, how many of them consume
    each queue; and the tracking figures of those and of the workers that stopped within
    WORKER_OFFLINE_AFTER (their last figures: what they spilled or dropped at shutdown),
    all from one read of the recent heartbeats."""
    since = Now() - timedelta(seconds=conf.WORKER_OFFLINE_AFTER)
    beats = WorkerHeartbeat.objects.filter(last_seen__gte=since).order_by("hostname")
    queues: Counter[str] = Counter()
    tracking: dict[str, WorkerTracking] = {}
    online = 0
    for hostname, names, figures, stopped_at in beats.values_list(
        "hostname", "queues", "tracking", "stopped_at"
    ):
        tracking[hostname] = worker_tracking(figures)
        if stopped_at is not None:
            continue
        online += 1
        queues.update({str(name) for name in names or [] if isinstance(name, str)})
    return online, dict(queues), tracking


def worker_tracking(figures: Any) -> WorkerTracking:
    """A heartbeat's `tracking` as numbers (a row of an older worker has none: zeros)."""
    if not isinstance(figures, dict):
        figures = {}
    return WorkerTracking(
        pending=int(_figure(figures, "pending")),
        lag=_figure(figures, "oldest_pending_seconds"),
        dropped=int(_figure(figures, "dropped")),
        spilled=int(_figure(figures, "spilled")),
    )


def _figure(figures: dict[str, Any], name: str) -> float:
    value = figures.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0.0
    return max(float(value), 0.0)


def spill_files() -> tuple[int, int, int]:
    """(files waiting, their bytes, files set aside) in this machine's spill folder."""
    waiting = size = unreadable = 0
    try:
        entries = list(os.scandir(spill_dir()))
    except OSError:  # no folder: nothing was ever spilled here
        return 0, 0, 0
    for entry in entries:
        if entry.name.endswith(SUFFIX + ASIDE):
            unreadable += 1
        elif entry.name.endswith(SUFFIX) or CLAIMED in entry.name:
            waiting += 1
            try:
                size += entry.stat().st_size
            except OSError:  # replayed and deleted meanwhile
                waiting -= 1
    return waiting, size, unreadable
