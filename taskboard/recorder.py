"""How tracking writes reach the database.

Every write is a single conditional UPDATE keyed by the task id, whose WHERE clause carries
the state-transition rule (see models.ALLOWED_FROM): no read before write, duplicates and
out-of-order writes are no-ops, terminal states are final. Only when the row does not exist
yet (the publisher did not record it) is it created, as PENDING, and the UPDATE repeated.

Writes that may be late without harm (STARTED of a very short task, progress) go through a
per-process buffer, flushed by a background thread: progress is coalesced to a bounded
number of writes per second per task, and the final state write absorbs what is pending,
so a short task costs one write in the worker.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import close_old_connections, connection, connections, transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from taskboard.conf import conf
from taskboard.models import ALLOWED_FROM, TaskExecution, TaskState
from taskboard.signals import execution_changed

logger = logging.getLogger("taskboard.tracking")

Lookup = tuple[str, Any]  # ("task_id", "…") or ("pk", 42)
CreateFields = Callable[[], dict[str, Any]]
IDLE_SECONDS = 2.0  # the flushing thread lets go of its connection after this long idle


@dataclass
class Write:
    """One state transition (or progress update) of one execution."""

    lookup: Lookup
    state: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    # Extra conditions of the transition, e.g. a RETRY must not overtake a newer attempt.
    conditions: dict[str, Any] = field(default_factory=dict)
    # Identity fields to create the row with when it is missing (None: never create).
    create: CreateFields | None = None

    def merged_with(self, newer: Write) -> Write:
        return replace(
            newer,
            state=newer.state or self.state,
            fields={**self.fields, **newer.fields},
            create=newer.create or self.create,
        )


@contextmanager
def isolated() -> Iterator[None]:
    # Inside a caller's transaction a failing tracking statement must not poison it.
    with transaction.atomic() if connection.in_atomic_block else nullcontext():
        yield


def apply(write: Write) -> bool:
    """Write one transition now. True when a row was changed."""
    key, value = write.lookup
    now = timezone.now()
    values: dict[str, Any] = {**write.fields, "updated_at": now}
    rows = TaskExecution.objects.filter(**{key: value}, **write.conditions)
    if write.state is not None:
        values["state"] = write.state
        rows = rows.filter(state__in=ALLOWED_FROM[write.state])
        if write.state == TaskState.PROGRESS and "started_at" not in values:
            values["started_at"] = Coalesce(F("started_at"), Value(now))
    with isolated():
        changed = bool(rows.update(**values))
        if not changed and write.create is not None and key == "task_id":
            missing = TaskExecution(task_id=value, state=TaskState.PENDING, **write.create())
            TaskExecution.objects.bulk_create([missing], ignore_conflicts=True)
            changed = bool(rows.update(**values))
    if changed:
        execution_changed.send(
            sender=TaskExecution, lookup=write.lookup, state=write.state, fields=write.fields
        )
    return changed


def apply_received(writes: list[Write]) -> None:
    """RECEIVED of many tasks in one statement (the consumer receives in bursts).

    The receipt time is a fact even when the task has moved on (a short task may already
    have finished when the batch lands): it is filled in whatever the state, while the state
    itself changes only where the transition rule allows it.
    """
    if not writes:
        return
    received_at = Case(
        *[When(task_id=w.lookup[1], then=Value(w.fields["received_at"])) for w in writes]
    )
    worker = Case(*[When(task_id=w.lookup[1], then=Value(w.fields["worker"])) for w in writes])
    TaskExecution.objects.filter(task_id__in=[w.lookup[1] for w in writes]).update(
        state=Case(
            When(state__in=ALLOWED_FROM[TaskState.RECEIVED], then=Value(TaskState.RECEIVED)),
            default=F("state"),
        ),
        received_at=Coalesce(F("received_at"), received_at),
        worker=Case(When(worker="", then=worker), default=F("worker")),
        updated_at=timezone.now(),
    )


@dataclass
class _Pending:
    write: Write
    due: float


class WriteBuffer:
    """Per-process buffer of deferred writes with one background flushing thread."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._pending: dict[Lookup, _Pending] = {}
        self._last_write: dict[Lookup, float] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False

    def put(self, write: Write, *, delay: float = 0.0) -> None:
        """Queue write; due after delay, and no sooner than the rate limit allows."""
        now = time.monotonic()
        interval = 1.0 / conf.PROGRESS_WRITES_PER_SECOND
        with self._cond:
            due = max(now + delay, self._last_write.get(write.lookup, -math.inf) + interval)
            pending = self._pending.get(write.lookup)
            if pending is None:
                self._pending[write.lookup] = _Pending(write, due)
            else:
                pending.write = pending.write.merged_with(write)
                pending.due = min(pending.due, due)
            self._ensure_thread()
            self._cond.notify()

    def take(self, lookup: Lookup) -> Write | None:
        """Remove and return what is pending for lookup (its final write absorbs it)."""
        with self._cond:
            self._last_write.pop(lookup, None)
            pending = self._pending.pop(lookup, None)
        return pending.write if pending else None

    def flush(self) -> None:
        """Write everything pending now, in the calling thread."""
        with self._cond:
            writes = [p.write for p in self._pending.values()]
            self._pending.clear()
        self._write_all(writes)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="taskboard-flush", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the flushing thread (closing its connection), then flush what is left."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush()
        with self._cond:
            self._stopping = False

    def _due_writes(self) -> list[Write] | None:
        """The writes that are due, [] after an idle spell, None when stopping."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                due = [k for k, p in self._pending.items() if p.due <= now]
                if due:
                    for key in due:
                        self._last_write[key] = now
                    return [self._pending.pop(key).write for key in due]
                if not self._pending:
                    if self._cond.wait(timeout=IDLE_SECONDS) or self._pending:
                        continue
                    return []
                wait = min(p.due for p in self._pending.values()) - now
                self._cond.wait(timeout=max(wait, 0.001))
            return None

    def _run(self) -> None:
        idle = False
        while True:
            writes = self._due_writes()
            if writes is None or (not writes and not idle):
                # Hold no database connection while there is nothing to write.
                connections.close_all()
                if writes is None:
                    return
                idle = True
                continue
            if writes:
                idle = False
                close_old_connections()
                self._write_all(writes)
                self._forget_idle()

    def _forget_idle(self) -> None:
        horizon = time.monotonic() - 60
        with self._cond:
            for key in [k for k, t in self._last_write.items() if t < horizon]:
                del self._last_write[key]

    @staticmethod
    def _write_all(writes: list[Write]) -> None:
        received = [w for w in writes if w.state == TaskState.RECEIVED]
        others = [w for w in writes if w.state != TaskState.RECEIVED]
        try:
            if received:
                apply_received(received)
        except Exception:
            logger.exception("taskboard: could not record RECEIVED of %d tasks", len(received))
        for write in others:
            try:
                apply(write)
            except Exception:
                logger.exception("taskboard: could not record %s of %s", write.state, write.lookup)


buffer = WriteBuffer()
# A forked worker child must not inherit the parent's pending writes, lock or thread.
os.register_at_fork(after_in_child=buffer._reset)
