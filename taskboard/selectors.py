"""Read queries: user task lists and module statistics."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Avg, Case, Count, Max, Min, Q, QuerySet, Sum, Value, When
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone
from django.utils.translation import gettext as _

from taskboard.conf import conf
from taskboard.inputs import whole_number
from taskboard.models import (
    ACTIVE_STATES,
    RUNNING_STATES,
    NotificationPreference,
    TaskExecution,
    TaskNotification,
    TaskState,
    TaskTemplate,
)


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


def execution_cancelled_unfinished_ids(*, limit: int) -> list[str]:
    """Task ids whose cancel was asked for but which have not finished: a worker starting
    now must refuse them (it missed the revoke broadcast). Few rows, served by tb_exec_active."""
    rows = TaskExecution.objects.filter(
        state__in=sorted(ACTIVE_STATES), cancel_requested_at__isnull=False
    ).order_by("-created_at")
    return list(rows.values_list("task_id", flat=True)[:limit])


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
    pk = whole_number(name, max_digits=18)
    if pk is not None:
        named |= Q(pk=pk)
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


# --- Notifications: a user's own ---------------------------------------------------------


def notification_text(*, state: str, label: str) -> str:
    """What a notification says, in the active language (the viewer's), from the final
    state and the task's label it stored."""
    texts: dict[str, str] = {
        TaskState.SUCCESS: _("«%(label)s» finished"),
        TaskState.FAILURE: _("«%(label)s» failed"),
        TaskState.REVOKED: _("«%(label)s» was cancelled"),
        TaskState.LOST: _("«%(label)s» was lost: its worker went away"),
    }
    text = texts.get(state)
    return text % {"label": label} if text else label


@dataclass(frozen=True)
class NotificationItem:
    """A notification as a page shows it."""

    id: int
    level: str
    state: str
    text: str
    task_id: str  # of the task it is about ("" if none): its detail page
    created_at: datetime
    is_read: bool


def _notification_rows(*, user: Any) -> QuerySet[TaskNotification]:
    return (
        TaskNotification.objects.filter(user=user)
        .select_related("execution")
        .only("id", "level", "state", "message", "created_at", "read_at", "execution__task_id")
        .order_by("-created_at", "-id")
    )


def _notification_items(*, rows: Collection[TaskNotification]) -> list[NotificationItem]:
    return [
        NotificationItem(
            id=row.pk,
            level=row.level,
            state=row.state,
            text=notification_text(state=row.state, label=row.message),
            task_id=row.execution.task_id if row.execution is not None else "",
            created_at=row.created_at,
            is_read=row.read_at is not None,
        )
        for row in rows
    ]


def notification_unread_count(*, user: Any) -> int:
    return TaskNotification.objects.filter(user=user, read_at__isnull=True).count()


def notification_bell(*, user: Any, limit: int = 5) -> tuple[int, list[NotificationItem]]:
    """(unread count, the newest `limit` unread): what the header's bell shows. Both are
    served by the (user, read_at, created_at) index; the count costs a query only when
    there are more unread than shown."""
    rows = list(_notification_rows(user=user).filter(read_at__isnull=True)[: limit + 1])
    count = len(rows) if len(rows) <= limit else notification_unread_count(user=user)
    return count, _notification_items(rows=rows[:limit])


@dataclass(frozen=True)
class NotificationPage:
    items: list[NotificationItem]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def notification_page(*, user: Any, number: int, per_page: int = 25) -> NotificationPage:
    """Page `number` (from 1) of user's notifications, newest first, without a COUNT: one
    row past the page says whether there is another."""
    start = (number - 1) * per_page
    rows = list(_notification_rows(user=user)[start : start + per_page + 1])
    return NotificationPage(
        items=_notification_items(rows=rows[:per_page]),
        number=number,
        has_next=len(rows) > per_page,
    )


def notification_preferences_get(*, user: Any) -> NotificationPreference:
    """user's preferences; without a saved row, the defaults (unsaved): all on, no e-mail."""
    preference = NotificationPreference.objects.filter(user=user).first()
    return preference if preference is not None else NotificationPreference(user=user)


# --- Task templates and retries -----------------------------------------------------------


def template_list_launchable(*, user: Any, module: str | None = None) -> QuerySet[TaskTemplate]:
    """The active templates user may launch, by module and name: staff every one, others
    those of their groups. One query (the group test is a subquery, so no duplicates)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return TaskTemplate.objects.none()
    rows = TaskTemplate.objects.filter(is_active=True).exclude(task_name="")
    if module:
        rows = rows.filter(module=module)
    if not user.is_staff:
        allowed = TaskTemplate.allowed_groups.through.objects.filter(group__user=user)
        rows = rows.filter(pk__in=allowed.values("tasktemplate_id"))
    return rows.order_by("module", "display_name", "key")


def template_get_active(*, key: str) -> TaskTemplate | None:
    """The active, launchable template of key (None: unknown, inactive or without a task)."""
    if len(key) > 200 or "\x00" in key:
        return None  # cannot exist: do not ask
    rows = TaskTemplate.objects.filter(key=key, is_active=True).exclude(task_name="")
    return rows.first()


def execution_retries(*, execution: TaskExecution) -> QuerySet[TaskExecution]:
    """The executions that retried execution, oldest first (whoever owns them)."""
    return TaskExecution.objects.filter(retry_of=execution).order_by("created_at", "id")


def execution_visible_to(*, execution: TaskExecution, viewer: Any) -> bool:
    """execution_list_for's rule for a row already read: staff see all, others their own."""
    if viewer is None or not getattr(viewer, "is_authenticated", False):
        return False
    return bool(viewer.is_staff or execution.user_id == viewer.pk)


# --- Estimates: a running task's time left, a queued task's typical duration ------------

QUEUED_STATES: frozenset[str] = frozenset({TaskState.PENDING, TaskState.RECEIVED})


@dataclass(frozen=True)
class TypicalDuration:
    """The median (p50) duration in seconds of a task's latest successful runs."""

    seconds: float
    runs: int  # how many runs the median is of


def duration_text(seconds: float) -> str:
    """A short rounded duration for people: "45 s", "3 min", "2 h 05 min"."""
    whole = max(0, round(seconds))
    if whole < 60:
        return _("%(seconds)d s") % {"seconds": whole}
    minutes = round(whole / 60)
    if minutes < 60:
        return _("%(minutes)d min") % {"minutes": minutes}
    hours, minutes = divmod(minutes, 60)
    return _("%(hours)d h %(minutes)02d min") % {"hours": hours, "minutes": minutes}


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

    @property
    def text(self) -> str:
        return duration_text(self.seconds)

    @property
    def elapsed_text(self) -> str:
        return duration_text(self.elapsed or 0)


def time_left(*, progress: float, elapsed: float) -> float | None:
    """Seconds left at the rate so far: elapsed × (100 − p) / p. None below
    TASKBOARD_ETA_MIN_PROGRESS percent (the rate says too little yet), at 100 %, or
    before any time has passed."""
    if progress < conf.ETA_MIN_PROGRESS or progress >= 100 or elapsed <= 0:
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
    runs of each task name; names never run successfully are absent.

    One query however many names: a UNION ALL of one bounded walk per name down the
    partial index tb_exec_success_name (task_name, created_at DESC WHERE SUCCESS), so its
    cost does not grow with the table, nor with how rare a name is."""
    names = sorted({name for name in task_names if name})
    if not names:
        return {}
    runs = runs or conf.TYPICAL_DURATION_RUNS

    def latest(name: str) -> QuerySet[TaskExecution, tuple[str, float | None]]:
        recent = TaskExecution.objects.filter(
            task_name=name, state=TaskState.SUCCESS, duration__isnull=False
        ).order_by("-created_at")
        # Through the primary key: SQLite takes no LIMIT inside a UNION's parts.
        rows = TaskExecution.objects.filter(pk__in=recent.values("pk")[:runs]).order_by()
        return rows.values_list("task_name", "duration")

    first, *rest = [latest(name) for name in names]
    durations: dict[str, list[float]] = {}
    for name, duration in first.union(*rest, all=True) if rest else first:
        if duration is not None:
            durations.setdefault(name, []).append(float(duration))
    return {
        name: TypicalDuration(seconds=_median(values), runs=len(values))
        for name, values in durations.items()
    }


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


# --- Bulk actions: what a confirmation states ----------------------------------------------


@dataclass(frozen=True)
class BulkPreview:
    """What a bulk action will work on: the newest `limit` executions of a selection.

    The action then runs on the primary keys low..high, so executions created after the
    confirmation are never touched by it."""

    total: int  # executions it will look at
    affected: int  # of them, those in a state the action applies to
    low: int | None
    high: int | None
    more: bool  # further (older) executions match beyond the limit


def execution_bulk_preview(
    *, rows: QuerySet[TaskExecution], affected: Q, limit: int
) -> BulkPreview:
    """Counts for a bulk action's confirmation: of the newest `limit` rows, how many there
    are and how many match `affected` (those the action applies to). Two queries, run only
    when a person asks for a confirmation: an aggregate over those rows, and whether older
    ones exist."""
    # Aggregated over the sliced query itself (a subquery in FROM): no join back. The test
    # is an annotation of that inner query, so `affected` may refer to its rows (OuterRef).
    newest = rows.select_related(None).annotate(
        bulk_affected=Case(When(affected, then=Value(1)), default=Value(0))
    )
    counts = newest.order_by("-pk")[:limit].aggregate(
        total=Count("id"),
        affected=Sum("bulk_affected"),
        low=Min("id"),
        high=Max("id"),
    )
    low, high = counts["low"], counts["high"]
    more = low is not None and rows.filter(pk__lt=low).exists()
    return BulkPreview(
        total=int(counts["total"]),
        affected=int(counts["affected"] or 0),
        low=low,
        high=high,
        more=more,
    )
