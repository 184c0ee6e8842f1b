"""Estimates: a running task's time left, a queued task's typical duration."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from taskboard.conf import conf
from taskboard.models import (
    QUEUED_STATES,
    RUNNING_STATES,
    TaskExecution,
    TaskState,
)


@dataclass(frozen=True)
class TypicalDuration:
    """The median (p50) duration in seconds of a task's latest successful runs."""

    seconds: float
    runs: int  # how many runs the median is of


@dataclass(frozen=True)
class Estimate:
    """When a task will be done, as its row, progress bar and detail page say it.

    kind "remaining": a running task's time left at its own progress rate so far;
    kind "typical": a queued task's usual duration (the p50 of its task's latest successes).
    """

    kind: str
    seconds: float
    runs: int = 0  # typical: how many successful runs the median is of
    elapsed: float | None = None  # remaining: seconds it has run
    progress: int | None = None  # remaining: the percent the rate comes from
    finishes_at: datetime | None = None  # remaining: when, at that rate

    @property
    def whole_seconds(self) -> int:
        return max(0, round(self.seconds))


def time_left(*, progress: float, elapsed: float) -> float | None:
    """Seconds left at the rate so far: elapsed × (100 − p) / p. None below
    TASKBOARD_ETA_MIN_PROGRESS percent (the rate says too little yet), at 100 %, or
    before any time has passed."""
    if progress <= 0 or progress < conf.ETA_MIN_PROGRESS or progress >= 100 or elapsed <= 0:
        return None
    return elapsed * (100 - progress) / progress


def _median(values: list[float]) -> float:
    """The nearest-rank p50 (the lower middle value), as module_stats computes it."""
    ordered = sorted(values)
    return ordered[max(math.ceil(len(ordered) / 2) - 1, 0)]


def typical_durations(
    *, task_names: Collection[str], runs: int | None = None
) -> dict[str, TypicalDuration]:
    """The p50 duration of the latest `runs` (TASKBOARD_TYPICAL_DURATION_RUNS) successful
    runs of each task name; names never run successfully are absent (one query, see
    latest_success_durations)."""
    durations = latest_success_durations(task_names=task_names, runs=runs)
    return {
        name: TypicalDuration(seconds=_median(values), runs=len(values))
        for name, values in durations.items()
    }


def latest_success_durations(
    *, task_names: Collection[str], runs: int | None = None
) -> dict[str, list[float]]:
    """The durations of the latest `runs` (TASKBOARD_TYPICAL_DURATION_RUNS) successful runs
    of each task name; names never run successfully are absent.

    One query however many names: a UNION ALL of one bounded walk per name down the
    partial index tb_exec_success_dur (task_name, created_at DESC INCLUDE duration WHERE
    SUCCESS), index-only on PostgreSQL, so its cost does not grow with the table, nor with
    how rare a name is."""
    names = sorted({name for name in task_names if name})
    if not names:
        return {}
    runs = runs or conf.TYPICAL_DURATION_RUNS

    direct = connection.features.supports_slicing_ordering_in_compound

    def latest(name: str) -> QuerySet[TaskExecution, tuple[str, float | None]]:
        recent = TaskExecution.objects.filter(
            task_name=name, state=TaskState.SUCCESS, duration__isnull=False
        ).order_by("-created_at")
        if direct:  # PostgreSQL: an index-only walk (the index includes duration)
            return recent.values_list("task_name", "duration")[:runs]
        # Through the primary key: SQLite takes no LIMIT inside a UNION's parts.
        rows = TaskExecution.objects.filter(pk__in=recent.values("pk")[:runs]).order_by()
        return rows.values_list("task_name", "duration")

    first, *rest = [latest(name) for name in names]
    durations: dict[str, list[float]] = {}
    for name, duration in first.union(*rest, all=True) if rest else first:
        if duration is not None:
            durations.setdefault(name, []).append(float(duration))
    return durations


_ESTIMATE_KEY = "_taskboard_estimate"  # an instance remembers its estimate for the request


_UNKNOWN = object()


def _estimate(
    execution: TaskExecution, typical: dict[str, TypicalDuration], now: datetime
) -> Estimate | None:
    if execution.cancel_requested_at is not None:
        return None  # it is being stopped: no time to tell
    if execution.state in QUEUED_STATES:
        known = typical.get(execution.task_name)
        if known is None:
            return None
        return Estimate(kind="typical", seconds=known.seconds, runs=known.runs)
    if execution.state not in RUNNING_STATES or execution.started_at is None:
        return None
    elapsed = (now - execution.started_at).total_seconds()
    remaining = time_left(progress=execution.progress, elapsed=elapsed)
    if remaining is None:
        return None
    return Estimate(
        kind="remaining",
        seconds=remaining,
        elapsed=elapsed,
        progress=execution.progress,
        finishes_at=now + timedelta(seconds=remaining),
    )


def execution_estimates(
    *, executions: Sequence[TaskExecution], now: datetime | None = None
) -> dict[int, Estimate | None]:
    """The estimate of each execution (by pk), remembered on the instances: one query for
    the typical durations of all the queued ones' task names, none when no row is queued."""
    now = now or timezone.now()
    queued = {
        e.task_name
        for e in executions
        if e.state in QUEUED_STATES and e.cancel_requested_at is None
    }
    typical = typical_durations(task_names=queued)
    estimates: dict[int, Estimate | None] = {}
    for execution in executions:
        estimate = _estimate(execution, typical, now)
        execution.__dict__[_ESTIMATE_KEY] = estimates[execution.pk] = estimate
    return estimates


def execution_estimate(*, execution: TaskExecution, now: datetime | None = None) -> Estimate | None:
    """execution's estimate (see Estimate), or None when there is nothing to tell. Asked
    twice for the same instance (the progress bar and the detail page), it queries once."""
    remembered = execution.__dict__.get(_ESTIMATE_KEY, _UNKNOWN)
    if remembered is not _UNKNOWN:
        return remembered  # type: ignore[no-any-return]
    return execution_estimates(executions=[execution], now=now)[execution.pk]
