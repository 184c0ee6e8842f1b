"""What a process knows about the tasks it publishes and runs: the fields that identify an
execution, and the tasks running here now."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from taskboard.models import capped
from taskboard.tracking import summaries
from taskboard.tracking.calls import call_record
from taskboard.tracking.ownership import resolve_owner
from taskboard.tracking.recorder import Lookup
from taskboard.tracking.registry import TaskMeta, template_key

# When it was published (epoch seconds), so whichever process creates the row dates it right.
PUBLISHED_HEADER = "taskboard_published"


def identity(
    meta: TaskMeta,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    owner: int | None,
    request: Any,
) -> dict[str, Any]:
    """The fields that identify an execution, known to publisher and worker alike."""
    published = field_of(request, PUBLISHED_HEADER)
    return {
        "created_at": _from_epoch(published) if published else timezone.now(),
        "task_name": capped("task_name", meta.name),
        "display_name": capped("display_name", meta.display_name),
        "module": meta.module,
        "template_id": template_key(meta),
        "user_id": owner,
        "args_summary": summaries.args_summary(args, meta.param_names),
        "kwargs_summary": summaries.kwargs_summary(kwargs),
        "call": call_record(args, kwargs, meta.param_names),
        "parent_task_id": field_of(request, "parent_id"),
        "root_task_id": _root(request),
        "group_id": field_of(request, "group"),
    }


def _from_epoch(value: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (ValueError, OverflowError):
        return timezone.now()


def _root(source: Any) -> str:
    root = field_of(source, "root_id")
    return "" if root == field_of(source, "id") else root


def field_of(source: Any, name: str) -> str:
    value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
    return capped("task_id", str(value)) if value else ""


@dataclass
class Running:
    """What a worker process knows about a task it is running (no DB read needed)."""

    task_id: str
    meta: TaskMeta
    started_at: datetime
    started_monotonic: float
    worker: str
    queue: str
    retries: int
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    carried_owner: Any = None
    lineage: dict[str, str] = field(default_factory=dict)
    cancel_checked: float = 0.0

    def fields(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "worker": self.worker,
            "queue": self.queue,
            "retries": self.retries,
        }

    def identity(self) -> dict[str, Any]:
        """Fields to create the row with, computed only if the publisher did not record it."""
        owner = resolve_owner(self.meta, self.args, self.kwargs, self.carried_owner)
        return identity(self.meta, self.args, self.kwargs, owner, self.lineage)

    def elapsed(self) -> float:
        return time.monotonic() - self.started_monotonic


running_tasks: dict[str, Running] = {}


def task_lookup(task_id: str) -> Lookup:
    return ("task_id", task_id)


class TaskCancelled(Exception):
    """Raised at a progress report of a running task whose cancellation was asked for:
    the task stops there and is recorded as REVOKED."""
