"""Read queries: user task lists and module statistics."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Avg, Count, Q, QuerySet
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from taskboard.models import RUNNING_STATES, TaskExecution, TaskState, TaskTemplate


def execution_list(
    *,
    user: Any = None,
    module: str | None = None,
    state: str | None = None,
) -> QuerySet[TaskExecution]:
    """Executions newest first, optionally by owner, module and state."""
    rows = TaskExecution.objects.select_related("user")
    if user is not None:
        rows = rows.filter(user=user)
    if module:
        rows = rows.filter(module=module)
    if state:
        rows = rows.filter(state=state)
    return rows.order_by("-created_at", "-id")


def execution_list_for(
    *,
    viewer: Any,
    module: str | None = None,
    state: str | None = None,
    owner: str | None = None,
    q: str | None = None,
) -> QuerySet[TaskExecution]:
    """What viewer may see, filtered: staff see everyone's tasks, others only their own."""
    if viewer is None or not getattr(viewer, "is_authenticated", False):
        return TaskExecution.objects.none()
    rows = execution_list(module=module or None, state=state or None)
    if not viewer.is_staff:
        rows = rows.filter(user=viewer)
    elif owner:
        rows = rows.filter(user__username=owner)
    if q:
        rows = rows.filter(Q(display_name__icontains=q) | Q(task_name__icontains=q))
    return rows


def execution_get_for(*, viewer: Any, task_id: str) -> TaskExecution | None:
    """The execution of task_id if viewer may see it (None otherwise: no leak of existence)."""
    if len(task_id) > 255 or "\x00" in task_id:
        return None  # cannot exist (and PostgreSQL rejects NUL in text): do not ask
    rows = execution_list_for(viewer=viewer).filter(task_id=task_id)
    return rows.select_related("cancel_requested_by", "retry_of").first()


def execution_children(*, execution: TaskExecution) -> QuerySet[TaskExecution]:
    return TaskExecution.objects.filter(parent_task_id=execution.task_id).order_by("created_at")


def module_names() -> list[str]:
    """Known modules, for filter choices: from the templates (a small table), never a
    DISTINCT over the executions."""
    return sorted(set(TaskTemplate.objects.values_list("module", flat=True)) - {""})


def user_task_list(*, user: Any, module: str | None = None) -> QuerySet[TaskExecution]:
    """A user's own executions, newest first (anonymous users have none)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return TaskExecution.objects.none()
    return execution_list(user=user, module=module)


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
    running = TaskExecution.objects.filter(module=module, state__in=RUNNING_STATES).count()
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


FAILED_STATES: frozenset[str] = frozenset({TaskState.FAILURE, TaskState.LOST})


def module_overview(
    *, days: int = 1, user: Any = None, module: str | None = None, now: datetime | None = None
) -> list[ModuleOverviewRow]:
    """Per-module volume, outcomes and running tasks of the last `days` days, sorted by
    module; only `user`'s own tasks when given. Two queries: one aggregate over the
    created_at window grouped by module, one count of running tasks per module (served by
    the partial index of active tasks, so it needs no time bound). `module`: that one only."""
    since = (now or timezone.now()) - timedelta(days=days)
    window = TaskExecution.objects.filter(created_at__gte=since)
    running_rows = TaskExecution.objects.filter(state__in=RUNNING_STATES)
    if user is not None:
        window = window.filter(user=user)
        running_rows = running_rows.filter(user=user)
    if module:
        window = window.filter(module=module)
        running_rows = running_rows.filter(module=module)
    grouped = (
        window.order_by()
        .values("module")
        .annotate(
            total=Count("id"),
            succeeded=Count("id", filter=Q(state=TaskState.SUCCESS)),
            failed=Count("id", filter=Q(state__in=FAILED_STATES)),
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


def module_exists(*, module: str) -> bool:
    """Whether anything is known of module: an execution or a template. At most two
    index lookups."""
    return (
        TaskExecution.objects.filter(module=module).exists()
        or TaskTemplate.objects.filter(module=module).exists()
    )


def module_recent_failures(*, module: str, limit: int = 10) -> QuerySet[TaskExecution]:
    """The module's newest failed or lost executions, with their owners."""
    return (
        TaskExecution.objects.filter(module=module, state__in=FAILED_STATES)
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


def _user_ids_named(name: str) -> list[Any]:
    """Ids of the users whose username is name or, for a number, whose id it is. One query."""
    user_model = get_user_model()
    named = Q(**{user_model.USERNAME_FIELD: name})
    if name.isascii() and name.isdigit() and len(name) <= 18:  # fits a bigint
        named |= Q(pk=int(name))
    return list(user_model.objects.filter(named).values_list("pk", flat=True)[:2])


def execution_search(
    *,
    viewer: Any,
    owner: str | None = None,
    mine: bool = False,
    module: str | None = None,
    states: Collection[str] = (),
    since: datetime | None = None,
) -> QuerySet[TaskExecution]:
    """What viewer may see (staff: everyone's tasks, others: their own; mine: their own
    for staff too), newest first, filtered by owner (username or numeric id), module, any
    of states, and created at or after since.

    The owner is resolved to ids first (one small query, staff only), so the list itself
    filters on user_id and PostgreSQL can walk the owner's index."""
    rows = execution_list_for(viewer=viewer, module=module or None)
    if viewer is None or not getattr(viewer, "is_authenticated", False):
        return rows
    if mine:
        rows = rows.filter(user=viewer)
    if owner:
        if not viewer.is_staff:
            if owner not in (viewer.get_username(), str(viewer.pk)):
                return rows.none()
        else:
            rows = rows.filter(user_id__in=_user_ids_named(owner))
    if states:
        rows = rows.filter(state__in=sorted(set(states)))
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    return rows
