"""Module statistics: counts, success rates, durations, recent failures."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, Q, QuerySet
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from taskboard.models import (
    FAILED_STATES,
    TaskExecution,
    TaskState,
    TaskTemplate,
    in_states,
)
from taskboard.permissions import Viewer


def module_names() -> list[str]:
    """Known modules, for filter choices: from the templates (a small table), never a
    DISTINCT over the executions."""
    return sorted(set(TaskTemplate.objects.values_list("module", flat=True)) - {""})


@dataclass(frozen=True)
class ModuleStats:
    module: str
    days: int
    since: datetime
    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0
    running: int = 0
    success_rate: float | None = None
    avg_duration: float | None = None
    p50_duration: float | None = None
    p95_duration: float | None = None

    @property
    def succeeded(self) -> int:
        return self.counts.get(TaskState.SUCCESS, 0)

    @property
    def failed(self) -> int:
        return self.counts.get(TaskState.FAILURE, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "days": self.days,
            "since": self.since.isoformat(),
            "counts": dict(self.counts),
            "total": self.total,
            "running": self.running,
            "success_rate": self.success_rate,
            "avg_duration": self.avg_duration,
            "p50_duration": self.p50_duration,
            "p95_duration": self.p95_duration,
        }


def _nearest_rank(rows: QuerySet[TaskExecution], count: int, percentile: float) -> float | None:
    if count == 0:
        return None
    index = max(math.ceil(percentile / 100 * count) - 1, 0)
    value = rows.order_by("duration").values_list("duration", flat=True)[index : index + 1]
    found = [v for v in value if v is not None]
    return float(found[0]) if found else None


def module_stats(*, module: str, days: int = 7, now: datetime | None = None) -> ModuleStats:
    """Counts per state, success rate and durations of a module's executions created in the
    last `days` days, and how many of its tasks are running now. Four queries.

    The success rate is SUCCESS over the tasks that ended on their own (SUCCESS, FAILURE,
    LOST); a revoked task was stopped by a person and counts for neither side. Durations are
    those of successful runs.
    """
    since = (now or timezone.now()) - timedelta(days=days)
    window = TaskExecution.objects.filter(module=module, created_at__gte=since)
    aggregates = window.aggregate(
        total=Count("id"),
        avg_duration=Avg("duration", filter=Q(state=TaskState.SUCCESS)),
        timed=Count("duration", filter=Q(state=TaskState.SUCCESS)),
        **{state: Count("id", filter=Q(state=state)) for state in TaskState.values},
    )
    counts = {state: int(aggregates[state]) for state in TaskState.values}
    ended = counts[TaskState.SUCCESS] + counts[TaskState.FAILURE] + counts[TaskState.LOST]
    durations = window.filter(state=TaskState.SUCCESS, duration__isnull=False)
    timed = int(aggregates["timed"])
    running = TaskExecution.objects.running().filter(module=module).count()
    return ModuleStats(
        module=module,
        days=days,
        since=since,
        counts=counts,
        total=int(aggregates["total"]),
        running=running,
        success_rate=counts[TaskState.SUCCESS] / ended if ended else None,
        avg_duration=aggregates["avg_duration"],
        p50_duration=_nearest_rank(durations, timed, 50),
        p95_duration=_nearest_rank(durations, timed, 95),
    )


@dataclass(frozen=True)
class ModuleOverviewRow:
    """One module's line on the dashboard's stats panel."""

    module: str
    total: int = 0
    succeeded: int = 0
    failed: int = 0  # FAILURE and LOST: the task ended on its own, without success
    running: int = 0

    @property
    def success_rate(self) -> float | None:
        ended = self.succeeded + self.failed
        return self.succeeded / ended if ended else None

    @property
    def success_percent(self) -> float | None:
        rate = self.success_rate
        return None if rate is None else rate * 100


def module_overview(
    *,
    days: int = 1,
    user: Viewer | None = None,
    module: str | None = None,
    now: datetime | None = None,
) -> list[ModuleOverviewRow]:
    """Per-module volume, outcomes and running tasks of the last `days` days, sorted by
    module; only `user`'s own tasks when given. Two queries: one aggregate over the
    created_at window grouped by module, one count of running tasks per module (served by
    the partial index of active tasks, so it needs no time bound). `module`: that one only."""
    since = (now or timezone.now()) - timedelta(days=days)
    window = TaskExecution.objects.filter(created_at__gte=since)
    running_rows = TaskExecution.objects.running()
    if user is not None:
        window = window.filter(user_id=user.pk or 0)
        running_rows = running_rows.filter(user_id=user.pk or 0)
    if module:
        window = window.filter(module=module)
        running_rows = running_rows.filter(module=module)
    grouped = (
        window.order_by()
        .values("module")
        .annotate(
            total=Count("id"),
            succeeded=Count("id", filter=Q(state=TaskState.SUCCESS)),
            failed=Count("id", filter=in_states(FAILED_STATES)),
        )
    )
    rows: dict[str, dict[str, int]] = {
        str(row["module"]): {
            "total": int(row["total"]),
            "succeeded": int(row["succeeded"]),
            "failed": int(row["failed"]),
        }
        for row in grouped
    }
    running = running_rows.order_by().values("module").annotate(running=Count("id"))
    for row in running:
        rows.setdefault(str(row["module"]), {})["running"] = int(row["running"])
    return [ModuleOverviewRow(module=module, **rows[module]) for module in sorted(rows)]


def module_name_possible(module: str) -> bool:
    """Could a module have this name? Not empty, not longer than the column, no NUL
    (PostgreSQL rejects it in text): anything else is answered without the database."""
    return 0 < len(module) <= 64 and "\x00" not in module


def module_exists(*, module: str) -> bool:
    """Whether anything is known of module: an execution or a template. At most two
    index lookups, none for a name that cannot exist."""
    if not module_name_possible(module):
        return False
    return (
        TaskExecution.objects.filter(module=module).exists()
        or TaskTemplate.objects.filter(module=module).exists()
    )


def module_recent_failures(*, module: str, limit: int = 10) -> QuerySet[TaskExecution]:
    """The module's newest failed or lost executions, with their owners."""
    return (
        TaskExecution.objects.failed()
        .filter(module=module)
        .select_related("user")
        .order_by("-created_at", "-id")[:limit]
    )


@dataclass(frozen=True)
class DurationPoint:
    start: datetime  # start of the bucket, in the current time zone
    avg_duration: float
    count: int


def module_duration_series(
    *,
    module: str,
    days: int = 7,
    bucket: str | None = None,
    now: datetime | None = None,
) -> list[DurationPoint]:
    """Average duration and count of the module's successful runs per hour (days <= 1) or
    per day, oldest first, over executions created in the last `days` days. One query;
    buckets without a successful run are absent."""
    bucket = bucket or ("hour" if days <= 1 else "day")
    if bucket not in ("hour", "day"):
        raise ValueError(f"bucket must be 'hour' or 'day', not {bucket!r}")
    since = (now or timezone.now()) - timedelta(days=days)
    trunc = TruncHour("created_at") if bucket == "hour" else TruncDay("created_at")
    rows = (
        TaskExecution.objects.filter(
            module=module,
            created_at__gte=since,
            state=TaskState.SUCCESS,
            duration__isnull=False,
        )
        .order_by()
        .annotate(bucket=trunc)
        .values("bucket")
        .annotate(avg_duration=Avg("duration"), count=Count("id"))
        .order_by("bucket")
    )
    return [
        DurationPoint(
            start=row["bucket"], avg_duration=float(row["avg_duration"]), count=int(row["count"])
        )
        for row in rows
    ]
