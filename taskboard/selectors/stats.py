"""Module statistics: counts, success rates, durations, recent failures."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Avg, Count, FloatField, Q, QuerySet
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from taskboard.models import (
    FAILED_STATES,
    QUEUED_STATES,
    RUNNING_STATES,
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


class PercentileDisc(Aggregate):
    """PostgreSQL's nearest-rank percentile: the first value whose cumulative share of the
    ordered values reaches `fraction` (what `nearest_rank` computes in Python)."""

    function = "PERCENTILE_DISC"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, *, fraction: float, **extra: Any) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], not {fraction!r}")
        # A float formatted here, never text from outside: safe inside the SQL.
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


def percentiles_in_sql() -> bool:
    """PostgreSQL computes percentiles in the aggregate; SQLite (the embedded default, a
    small database) gets the durations and computes them in Python."""
    return connection.vendor == "postgresql"


def nearest_rank(values: Sequence[float], fraction: float) -> float | None:
    """The value at rank ceil(fraction × n) of the sorted values (PostgreSQL's
    percentile_disc); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)])


SUCCEEDED_RUN = Q(state=TaskState.SUCCESS, duration__isnull=False)


def module_windows(
    *, module: str, days: Sequence[int] = (1, 7), now: datetime | None = None
) -> list[ModuleStats]:
    """module_stats for several windows at once (each the last `d` days), read in one pass
    over the widest: one conditional aggregate with the percentiles in it on PostgreSQL,
    plus one read of the successful durations on SQLite; plus the count of running tasks.
    Two queries on PostgreSQL, three on SQLite, however many windows."""
    now = now or timezone.now()
    since = {d: now - timedelta(days=d) for d in days}
    window = TaskExecution.objects.filter(module=module, created_at__gte=min(since.values()))
    in_sql = percentiles_in_sql()
    aggregates: dict[str, Any] = {}
    for d, start in since.items():
        inside = Q(created_at__gte=start)
        succeeded = inside & SUCCEEDED_RUN
        aggregates[f"total_{d}"] = Count("id", filter=inside)
        aggregates[f"avg_{d}"] = Avg("duration", filter=succeeded)
        for state in TaskState.values:
            aggregates[f"{state}_{d}"] = Count("id", filter=inside & Q(state=state))
        if in_sql:
            aggregates[f"p50_{d}"] = PercentileDisc("duration", fraction=0.5, filter=succeeded)
            aggregates[f"p95_{d}"] = PercentileDisc("duration", fraction=0.95, filter=succeeded)
    values = window.aggregate(**aggregates)
    if not in_sql:
        runs = list(window.filter(SUCCEEDED_RUN).values_list("created_at", "duration"))
        for d, start in since.items():
            durations = [
                float(duration)
                for created, duration in runs
                if created >= start and duration is not None
            ]
            values[f"p50_{d}"] = nearest_rank(durations, 0.5)
            values[f"p95_{d}"] = nearest_rank(durations, 0.95)
    running = TaskExecution.objects.running().filter(module=module).count()
    result = []
    for d, start in since.items():
        counts = {state: int(values[f"{state}_{d}"]) for state in TaskState.values}
        ended = counts[TaskState.SUCCESS] + counts[TaskState.FAILURE] + counts[TaskState.LOST]
        result.append(
            ModuleStats(
                module=module,
                days=d,
                since=start,
                counts=counts,
                total=int(values[f"total_{d}"]),
                running=running,
                success_rate=counts[TaskState.SUCCESS] / ended if ended else None,
                avg_duration=_float_or_none(values[f"avg_{d}"]),
                p50_duration=_float_or_none(values[f"p50_{d}"]),
                p95_duration=_float_or_none(values[f"p95_{d}"]),
            )
        )
    return result


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def module_stats(*, module: str, days: int = 7, now: datetime | None = None) -> ModuleStats:
    """Counts per state, success rate and durations of a module's executions created in the
    last `days` days, and how many of its tasks are running now. Two queries on
    PostgreSQL, three on SQLite (module_windows).

    The success rate is SUCCESS over the tasks that ended on their own (SUCCESS, FAILURE,
    LOST); a revoked task was stopped by a person and counts for neither side. Durations are
    those of successful runs; p50 and p95 are nearest-rank percentiles.
    """
    return module_windows(module=module, days=(days,), now=now)[0]


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


@dataclass(frozen=True)
class Headline:
    """The dashboard's four numbers."""

    running: int = 0
    queued: int = 0
    failed: int = 0  # failed or lost, created in the window
    lost: int = 0  # lost, created in the window


HEADLINE_HOURS = 24


def headline_counts(*, user: Viewer | None = None, now: datetime | None = None) -> Headline:
    """Running and queued tasks now, and those created in the last HEADLINE_HOURS hours
    that failed (or were lost) and that were lost; `user`'s own only when given. One
    conditional aggregate: the running and queued rows come from the partial index of
    active tasks, the failed ones from the created_at window."""
    since = (now or timezone.now()) - timedelta(hours=HEADLINE_HOURS)
    recent = Q(created_at__gte=since)
    rows = TaskExecution.objects.filter(
        in_states(RUNNING_STATES | QUEUED_STATES) | (recent & in_states(FAILED_STATES))
    )
    if user is not None:
        rows = rows.filter(user_id=user.pk or 0)
    counts = rows.aggregate(
        running=Count("id", filter=in_states(RUNNING_STATES)),
        queued=Count("id", filter=in_states(QUEUED_STATES)),
        failed=Count("id", filter=recent & in_states(FAILED_STATES)),
        lost=Count("id", filter=recent & Q(state=TaskState.LOST)),
    )
    return Headline(**{name: int(value) for name, value in counts.items()})


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


def hour_starts(*, hours: int, now: datetime) -> list[datetime]:
    """The starts of the last `hours` hours of the clock, oldest first, the current one last
    (aware, in the current time zone). Stepped in UTC, so a DST change skips or repeats
    nothing."""
    current = timezone.localtime(now).replace(minute=0, second=0, microsecond=0)
    utc = current.astimezone(UTC)
    return [timezone.localtime(utc - timedelta(hours=back)) for back in range(hours - 1, -1, -1)]


def day_starts(*, days: int, now: datetime) -> list[datetime]:
    """The local midnights of the last `days` calendar days, oldest first, today last."""
    today = timezone.localdate(now)
    return [
        timezone.make_aware(datetime.combine(today - timedelta(days=back), time.min))
        for back in range(days - 1, -1, -1)
    ]


@dataclass(frozen=True)
class HourOutcomes:
    """The executions created in one hour, by how they stand now."""

    start: datetime
    succeeded: int = 0
    failed: int = 0  # FAILURE or LOST
    other: int = 0  # revoked, or not finished yet

    @property
    def total(self) -> int:
        return self.succeeded + self.failed + self.other


def module_hourly_outcomes(
    *, module: str, hours: int = 24, now: datetime | None = None
) -> list[HourOutcomes]:
    """One entry per clock hour of the last `hours` (empty hours too), oldest first: the
    module's executions created in it that succeeded, failed or lost, and the rest. One
    query, grouped by hour in the database, over the (module, created_at) index."""
    starts = hour_starts(hours=hours, now=now or timezone.now())
    rows = (
        TaskExecution.objects.filter(module=module, created_at__gte=starts[0])
        .order_by()
        .annotate(bucket=TruncHour("created_at"))
        .values("bucket")
        .annotate(
            total=Count("id"),
            succeeded=Count("id", filter=Q(state=TaskState.SUCCESS)),
            failed=Count("id", filter=in_states(FAILED_STATES)),
        )
    )
    found = {row["bucket"]: row for row in rows}
    hours_out = []
    for start in starts:
        row = found.get(start)
        if row is None:
            hours_out.append(HourOutcomes(start=start))
            continue
        succeeded, failed = int(row["succeeded"]), int(row["failed"])
        hours_out.append(
            HourOutcomes(
                start=start,
                succeeded=succeeded,
                failed=failed,
                other=int(row["total"]) - succeeded - failed,
            )
        )
    return hours_out


@dataclass(frozen=True)
class DayDurations:
    """The durations of one day's successful runs (None when there were none)."""

    start: datetime  # local midnight
    count: int = 0
    p50: float | None = None
    p95: float | None = None


def module_daily_durations(
    *, module: str, days: int = 7, now: datetime | None = None
) -> list[DayDurations]:
    """One entry per calendar day of the last `days` (today included; days without a
    successful run too), oldest first: how many of the module's executions created that
    day succeeded, and the p50 and p95 of their durations. One query: grouped by day with
    percentile_disc on PostgreSQL; on SQLite the durations, grouped here."""
    starts = day_starts(days=days, now=now or timezone.now())
    runs = TaskExecution.objects.filter(SUCCEEDED_RUN, module=module, created_at__gte=starts[0])
    found: dict[date, DayDurations] = {}
    if percentiles_in_sql():
        rows = (
            runs.order_by()
            .annotate(bucket=TruncDay("created_at"))
            .values("bucket")
            .annotate(
                count=Count("id"),
                p50=PercentileDisc("duration", fraction=0.5),
                p95=PercentileDisc("duration", fraction=0.95),
            )
        )
        for row in rows:
            day = timezone.localdate(row["bucket"])
            found[day] = DayDurations(
                start=row["bucket"],
                count=int(row["count"]),
                p50=_float_or_none(row["p50"]),
                p95=_float_or_none(row["p95"]),
            )
    else:
        by_day: dict[date, list[float]] = defaultdict(list)
        for created, duration in runs.values_list("created_at", "duration"):
            if duration is not None:  # excluded by the query; said again for the types
                by_day[timezone.localdate(created)].append(float(duration))
        for day, durations in by_day.items():
            found[day] = DayDurations(
                start=timezone.make_aware(datetime.combine(day, time.min)),
                count=len(durations),
                p50=nearest_rank(durations, 0.5),
                p95=nearest_rank(durations, 0.95),
            )
    return [found.get(timezone.localdate(start), DayDurations(start=start)) for start in starts]
