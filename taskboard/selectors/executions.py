"""Reads of executions: lists for a viewer, one task, its children and retries, search."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Case, Count, IntegerField, Max, Min, Q, Sum, Value, When, Window
from django.utils import timezone

from taskboard.inputs import whole_number
from taskboard.models import (
    FAILED_STATES,
    QUEUED_STATES,
    RUNNING_STATES,
    TaskExecution,
    TaskExecutionQuerySet,
)
from taskboard.permissions import Viewer, is_operator, may_name_owner


def execution_list(
    *,
    user: Viewer | None = None,
    module: str | None = None,
    state: str | None = None,
) -> TaskExecutionQuerySet:
    """Executions newest first, optionally by owner, module and state."""
    rows = TaskExecution.objects.select_related("user")
    if user is not None:
        rows = rows.filter(user_id=user.pk or 0)
    if module:
        rows = rows.filter(module=module)
    if state:
        rows = rows.filter(state=state)
    return rows.order_by("-created_at", "-id")


# The list's `state` filter takes a state or one of these groups (the dashboard's headline
# counters link to them), and `since` one of these windows over created_at.
STATE_GROUPS: dict[str, frozenset[str]] = {
    "running": RUNNING_STATES,
    "queued": QUEUED_STATES,
    "failed": FAILED_STATES,
}
SINCE_WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


def execution_list_for(
    *,
    viewer: Viewer | None,
    module: str | None = None,
    state: str | None = None,
    owner: str | None = None,
    q: str | None = None,
    since: str | None = None,
) -> TaskExecutionQuerySet:
    """What viewer may see, filtered: staff see everyone's tasks, others only their own.
    state is a state or a group of STATE_GROUPS; since a window of SINCE_WINDOWS (created
    at most that long before now); unknown values of either filter nothing."""
    group = STATE_GROUPS.get(state or "")
    single = None if group else state or None
    rows = execution_list(module=module or None, state=single).visible_to(viewer)
    if group:
        rows = rows.in_states(group)
    window = SINCE_WINDOWS.get(since or "")
    if window is not None:
        rows = rows.filter(created_at__gte=timezone.now() - window)
    if owner and is_operator(viewer):
        rows = rows.filter(user__username=owner)
    if q:
        rows = rows.filter(Q(display_name__icontains=q) | Q(task_name__icontains=q))
    return rows


# From this OFFSET on, a page is read by its primary keys first (deep_paged).
DEEP_OFFSET = 1000


class DeepPagedQuerySet(TaskExecutionQuerySet):
    """Executions whose deep pages are read by a deferred join: a slice from DEEP_OFFSET on
    asks for `WHERE id IN (SELECT id … ORDER BY … OFFSET n LIMIT m)` ordered the same way.
    The subquery walks the sort's index alone (every list index ends with id: an index-only
    scan), so skipping 50,000 rows does not fetch 50,000 rows from the table, as a plain
    OFFSET does. Same rows in the same order: every sort of the list ends with a unique
    tie-breaker (tables.py). Shallow pages are read as they were."""

    def __getitem__(self, k: Any) -> Any:
        if (
            isinstance(k, slice)
            and k.step is None
            and k.stop is not None
            and (k.start or 0) >= DEEP_OFFSET
            and self._result_cache is None
            and getattr(self, "_fields", None) is None
            and not self.query.is_sliced
        ):
            keys = TaskExecutionQuerySet.__getitem__(self.values("pk"), k)
            return self.filter(pk__in=keys)
        return super().__getitem__(k)


def deep_paged(rows: TaskExecutionQuerySet) -> DeepPagedQuerySet:
    """rows, their deep pages read by primary key first (DeepPagedQuerySet)."""
    return DeepPagedQuerySet(model=rows.model, query=rows.query.chain(), using=rows.db)


def execution_get_for(*, viewer: Viewer | None, task_id: str) -> TaskExecution | None:
    """The execution of task_id if viewer may see it (None otherwise: no leak of existence)."""
    if len(task_id) > 255 or "\x00" in task_id:
        return None  # cannot exist (and PostgreSQL rejects NUL in text): do not ask
    rows = execution_list_for(viewer=viewer).filter(task_id=task_id)
    return rows.select_related("cancel_requested_by", "retry_of").first()


def execution_children(*, execution: TaskExecution) -> TaskExecutionQuerySet:
    """Every task execution launched, whoever owns them (oldest first): not for display."""
    return TaskExecution.objects.filter(parent_task_id=execution.task_id).order_by("created_at")


@dataclass(frozen=True)
class Children:
    """The children of an execution as one viewer may see them."""

    shown: list[TaskExecution]  # the ones viewer may see, oldest first, at most `limit`
    hidden: int  # the ones viewer may not see: counted, never described


def execution_children_for(
    *, viewer: Viewer | None, execution: TaskExecution, limit: int
) -> Children:
    """The children viewer may see (at most limit) and how many others there are. One query:
    visible ones first, each row carrying the count of all children and of its own kind
    (window counts, taken before the LIMIT). Only the visible rows are returned in `shown`."""
    children = execution_children(execution=execution)
    if is_operator(viewer):
        return Children(shown=list(children[:limit]), hidden=0)
    visible = Q(pk__in=children.visible_to(viewer).values("pk"))
    flag = Case(When(visible, then=Value(1)), default=Value(0), output_field=IntegerField())
    rows = list(
        children.annotate(
            child_visible=flag,
            children_total=Window(Count("pk")),
            kind_total=Window(Count("pk"), partition_by=[flag]),
        ).order_by("-child_visible", "created_at", "pk")[:limit]
    )
    if not rows:
        return Children(shown=[], hidden=0)
    shown = [row for row in rows if _annotated(row, "child_visible")]
    first = rows[0]
    visible_total = _annotated(first, "kind_total") if _annotated(first, "child_visible") else 0
    return Children(shown=shown, hidden=_annotated(first, "children_total") - visible_total)


def _annotated(row: TaskExecution, name: str) -> int:
    """A number the query annotated row with (not a field the type knows)."""
    return int(getattr(row, name))


def user_task_list(*, user: Viewer | None, module: str | None = None) -> TaskExecutionQuerySet:
    """A user's own executions, newest first (anonymous users have none)."""
    if user is None or not user.is_authenticated:
        return TaskExecution.objects.none()
    return execution_list(user=user, module=module)


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
    viewer: Viewer | None,
    owner: str | None = None,
    mine: bool = False,
    module: str | None = None,
    states: Collection[str] = (),
    since: datetime | None = None,
) -> TaskExecutionQuerySet:
    """What viewer may see (staff: everyone's tasks, others: their own; mine: their own
    for staff too), newest first, filtered by owner (username or numeric id), module, any
    of states, and created at or after since.

    The owner is resolved to ids first (one small query, staff only), so the list itself
    filters on user_id and PostgreSQL can walk the owner's index."""
    rows = execution_list_for(viewer=viewer, module=module or None)
    if viewer is None or not viewer.is_authenticated:
        return rows
    if mine:
        rows = rows.filter(user_id=viewer.pk or 0)
    if owner:
        if not may_name_owner(viewer, owner):
            return rows.none()
        if is_operator(viewer):
            rows = rows.filter(user_id__in=_user_ids_named(owner))
    if states:
        rows = rows.in_states(set(states))
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    return rows


def execution_retries(*, execution: TaskExecution) -> TaskExecutionQuerySet:
    """The executions that retried execution, oldest first (whoever owns them)."""
    return TaskExecution.objects.filter(retry_of=execution).order_by("created_at", "id")


@dataclass(frozen=True)
class BulkPreview:
    """What a bulk action will work on: every execution of a selection, counted.

    The action then runs on the primary keys low..high, so executions created after the
    confirmation are never touched by it."""

    total: int  # executions it will look at
    affected: int  # of them, those in a state the action applies to
    low: int | None
    high: int | None


def execution_bulk_preview(*, rows: TaskExecutionQuerySet, affected: Q) -> BulkPreview:
    """Counts for a bulk action's confirmation: how many rows there are and how many match
    `affected` (those the action applies to), and their primary-key range. One aggregate
    query over the whole selection, run only when a person asks for a confirmation."""
    # The test is an annotation, so `affected` may refer to the rows (OuterRef).
    counted = (
        rows.select_related(None)
        .order_by()
        .annotate(bulk_affected=Case(When(affected, then=Value(1)), default=Value(0)))
    )
    counts = counted.aggregate(
        total=Count("id"),
        affected=Sum("bulk_affected"),
        low=Min("id"),
        high=Max("id"),
    )
    return BulkPreview(
        total=int(counts["total"]),
        affected=int(counts["affected"] or 0),
        low=counts["low"],
        high=counts["high"],
    )
