"""Reconciliation: every row reaches a final state, and LOST is written only when certain.

Liveness is judged by the database's clock (`database_now()`): a worker's `last_seen` is
stamped by the database, so no web or worker clock decides who is gone. Times a worker
wrote itself (a task's `started_at`, `received_at`, the beat's `clock` and `started_at`)
are compared only with each other.

The rules (README "Guarantees"):

1. A running row (STARTED/PROGRESS) of a worker that is gone (stopped, or silent past
   TASKBOARD_WORKER_OFFLINE_AFTER) is LOST; so is one that an earlier process under the
   same name was running (the row started before the live process did).
2. A running row of a live worker that no longer runs it is LOST: its beat lists every task
   it runs (`active`), the row is not there, and the row started more than a margin before
   the beat was taken (the margin covers a task accepted between the pool and the beat). A
   beat without a usable list says nothing ("unknown": no LOST).
3. A RECEIVED row (a worker took the message, e.g. prefetched) of a worker that is gone or
   restarted is LOST ("message lost with worker X") once its message is provably gone: not
   in the broker (neither queued nor unacknowledged; Redis only, where an unacknowledged
   message of a dead worker is given back after the visibility timeout), not run by any live
   worker, and found so on two runs at least TASKBOARD_WORKER_OFFLINE_AFTER apart (a message
   acknowledged by a worker that just started the task is in nobody's list for a moment).
   A broker that cannot be asked proves nothing: no LOST. Reading the broker costs one
   pass over those queues, only when such rows exist.
4. A PENDING row (older than 3 x TASKBOARD_WORKER_OFFLINE_AFTER, at least 30 s) waits for
   a worker while its message is in the broker. One whose message is provably gone in the
   same way (a worker took it and died before its RECEIVED or STARTED write, or ran it to
   an end it could not write) is LOST: "message lost". The queues read are the row's own
   and every queue a live worker consumes.

Rows that a live worker lists as running are never LOST, whatever worker they name (an
idempotent task given back and run again elsewhere). LOST is written like every other
state change: through the recorder's conditional UPDATE (the state rule and the rule's own
conditions in its WHERE clause, so a task that moved on meanwhile keeps its state) and
announced the same way.

The job runs from beat on its own queue, and from the web (`reconcile_from_web`:
single-flight, at most once per TASKBOARD_RECONCILE_INTERVAL, triggered by dashboard
polls), so it runs even when no worker does.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import caches
from django.db import close_old_connections, connection

from taskboard.conf import conf
from taskboard.models import (
    RUNNING_STATES,
    TaskExecution,
    TaskState,
    WorkerHeartbeat,
    database_now,
)
from taskboard.services.workers.single_flight import once_per
from taskboard.tracking.recorder import Write, apply_many

logger = logging.getLogger(__name__)

BATCH = 500
GATE_KEY = "taskboard:reconcile:gate"
ABSENT_KEY = "taskboard:reconcile:absent"
# How long the web waits for a reconcile it started before answering anyway (the poll
# itself must stay well inside the web's ~3 s bound on a sick dependency; the LOST it
# writes shows in the next poll at worst).
WEB_WAIT_SECONDS = 1.0
# The most broker entries read to prove a message gone; past it: unknown, no LOST.
BROKER_SCAN_LIMIT = 100_000
BEAT_FIELDS = (
    "hostname",
    "started_at",
    "last_seen",
    "stopped_at",
    "draining_since",
    "clock",
    "active",
)


@dataclass(frozen=True)
class Lost:
    """Why a row is LOST: written to exception_type/exception_message."""

    kind: str
    message: str


def executions_mark_lost(*, now: datetime | None = None) -> int:
    """Apply the rules above once. Returns how many executions were marked LOST.

    Workers that never recorded a heartbeat are left alone: nothing says they are gone."""
    now = now or database_now()
    beats = list(WorkerHeartbeat.objects.only(*BEAT_FIELDS))
    live = [beat for beat in beats if beat.is_online(now=now)]
    # What live workers run, whatever worker the rows name: never LOST.
    running_somewhere: set[str] = set()
    for beat in live:
        running_somewhere |= active_ids(beat) or set()
    suspects = Suspects(now)
    marked = 0
    for beat in beats:
        worker = beat.hostname
        if beat in live:
            marked += _mark(
                TaskExecution.objects.running().filter(
                    worker=worker, started_at__lt=beat.started_at
                ),
                {"worker": worker, "started_at__lt": beat.started_at},
                Lost("WorkerLostError", f"Worker {worker} restarted while the task was running."),
                now=now,
                # A beat may lack the worker's clock, but what it lists the new process runs
                # (it may have taken work before its first beat recorded its start).
                spare=running_somewhere | listed_ids(beat),
            )
            marked += _mark_no_longer_run(beat, now=now, spare=running_somewhere, suspects=suspects)
        else:
            marked += _mark(
                TaskExecution.objects.running().filter(worker=worker),
                {"worker": worker},
                Lost("WorkerLostError", f"Worker {worker} went away while the task was running."),
                now=now,
                spare=running_somewhere,
            )
    marked += _mark_messages_lost(beats, live, now=now, spare=running_somewhere, suspects=suspects)
    suspects.save()
    return marked


def active_ids(beat: WorkerHeartbeat) -> set[str] | None:
    """The ids the worker said it runs at its last beat; None when the beat does not say
    (no list, no worker clock, an entry without an id, or a list marked incomplete)."""
    active = beat.active
    if beat.clock is None or not isinstance(active, list):
        return None
    ids: set[str] = set()
    for entry in active:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            return None
        if entry.get("truncated"):
            return None
        ids.add(entry["id"])
    return ids


def listed_ids(beat: WorkerHeartbeat) -> set[str]:
    """Every id the beat lists, whatever else it says (a listed task is being run)."""
    active = beat.active if isinstance(beat.active, list) else []
    return {e["id"] for e in active if isinstance(e, dict) and isinstance(e.get("id"), str)}


def no_longer_run_margin() -> timedelta:
    """How much older than the beat a row must be before its absence from the beat counts:
    a task is accepted by the worker's main process a moment after its pool process has
    written STARTED."""
    return timedelta(seconds=max(2 * conf.HEARTBEAT_INTERVAL, conf.STARTED_WRITE_DELAY + 1))


def _mark_no_longer_run(
    beat: WorkerHeartbeat, *, now: datetime, spare: set[str], suspects: Suspects
) -> int:
    ids = active_ids(beat)
    if ids is None or beat.clock is None:
        return 0  # unknown: nothing proves the worker stopped running anything
    before = beat.clock - no_longer_run_margin()
    rows = TaskExecution.objects.running().filter(worker=beat.hostname, started_at__lt=before)
    worker = beat.hostname
    return _mark(
        rows,
        {"worker": worker, "started_at__lt": before},
        Lost(
            "WorkerLostError",
            f"Worker {worker} no longer runs the task (its process died or the worker restarted).",
        ),
        now=now,
        spare=spare | ids,
        confirm=suspects.confirmed,
    )


def _mark(
    rows: Any,
    conditions: dict[str, object],
    lost: Lost,
    *,
    now: datetime,
    spare: set[str],
    from_states: frozenset[str] = RUNNING_STATES,
    confirm: Callable[[str], bool] | None = None,
) -> int:
    fields = {
        "finished_at": now,
        "lost_at": now,
        "exception_type": lost.kind,
        "exception_message": lost.message,
    }
    marked = 0
    for batch in rows.batches(size=BATCH, fields=("task_id",)):
        writes = [
            Write(
                ("pk", pk),
                TaskState.LOST,
                dict(fields),
                # Checked again in the UPDATE itself: a task that finished, or moved on to
                # another worker meanwhile, keeps its state.
                conditions=dict(conditions),
                from_states=from_states,
            )
            for pk, task_id in batch
            if task_id not in spare and (confirm is None or confirm(task_id))
        ]
        marked += len(apply_many(writes))
    return marked


# --- Rule 3: messages lost with their worker ---------------------------------------------


def _mark_messages_lost(
    beats: list[WorkerHeartbeat],
    live: list[WorkerHeartbeat],
    *,
    now: datetime,
    spare: set[str],
    suspects: Suspects,
) -> int:
    # task_id -> (pk, state, worker named in the message, queue)
    candidates: dict[str, tuple[int, str, str, str]] = {}
    for beat in beats:
        rows = TaskExecution.objects.filter(state=TaskState.RECEIVED, worker=beat.hostname)
        if beat in live:  # only what an earlier process under this name had taken
            rows = rows.filter(received_at__lt=beat.started_at)
        for pk, task_id, queue in rows.values_list("pk", "task_id", "queue")[:BATCH]:
            candidates[task_id] = (pk, TaskState.RECEIVED, beat.hostname, queue)
    # Never received as far as the record knows: a worker that died may have taken it (its
    # RECEIVED/STARTED write was still waiting) or run it to an end it could not write.
    settled = now - timedelta(seconds=max(30.0, 3 * conf.WORKER_OFFLINE_AFTER))
    pending = TaskExecution.objects.filter(state=TaskState.PENDING, created_at__lt=settled)
    for pk, task_id, queue in pending.order_by("pk").values_list("pk", "task_id", "queue")[:BATCH]:
        candidates[task_id] = (pk, TaskState.PENDING, "", queue)
    for task_id in spare & candidates.keys():
        del candidates[task_id]
    if not candidates:
        return 0
    queues = {queue for *_, queue in candidates.values() if queue}
    for beat in live:
        queues |= {str(queue) for queue in beat.queues or [] if isinstance(queue, str)}
    present = messages_present(candidates.keys(), queues)
    if present is None:
        return 0  # the broker cannot tell: nothing is proven
    absent = {task_id for task_id in candidates if task_id not in present}
    writes = []
    for task_id in absent:
        if not suspects.confirmed(task_id):
            continue  # seen gone once: confirmed on a later run
        pk, state, worker, _ = candidates[task_id]
        message = (
            f"Message lost with worker {worker}."
            if worker
            else "Message lost: no worker runs it and the broker holds it no more."
        )
        writes.append(
            Write(
                ("pk", pk),
                TaskState.LOST,
                {
                    "finished_at": now,
                    "lost_at": now,
                    "exception_type": "MessageLost",
                    "exception_message": message,
                },
                conditions={"worker": worker} if worker else {},
                from_states=frozenset({state}),
            )
        )
    return len(apply_many(writes))


class Suspects:
    """Rows an inference says are lost, remembered between runs (in the shared cache): one
    is marked only when the inference held on a run at least TASKBOARD_WORKER_OFFLINE_AFTER
    earlier too. A moment's appearance (a task just accepted, a final write still on its
    way, a message just acknowledged by the worker starting it) never makes a LOST."""

    def __init__(self, now: datetime) -> None:
        self.before = _absent_before()
        self.now = now.timestamp()
        self.threshold = self.now - conf.WORKER_OFFLINE_AFTER
        self.current: dict[str, float] = {}

    def confirmed(self, task_id: str) -> bool:
        first = self.before.get(task_id)
        self.current[task_id] = self.now if first is None else first
        return first is not None and first <= self.threshold

    def save(self) -> None:
        _remember_absent(self.current)


def _absent_before() -> dict[str, float]:
    try:
        value = caches[conf.CACHE_ALIAS].get(ABSENT_KEY)
    except Exception:
        logger.warning("taskboard: reconciliation could not read its memory", exc_info=True)
        return {}
    return value if isinstance(value, dict) else {}


def _remember_absent(absent: dict[str, float]) -> None:
    try:
        if absent:
            timeout = max(600.0, 20 * conf.RECONCILE_INTERVAL)
            caches[conf.CACHE_ALIAS].set(ABSENT_KEY, absent, timeout=timeout)
        else:
            caches[conf.CACHE_ALIAS].delete(ABSENT_KEY)
    except Exception:
        logger.warning("taskboard: reconciliation could not keep its memory", exc_info=True)


def messages_present(
    task_ids: Iterable[str], queues: Iterable[str], *, app: Any = None
) -> set[str] | None:
    """Which of these task ids still have a message in the broker (queued, or held
    unacknowledged by some worker, dead or alive). None when the broker cannot tell.

    Redis: the queues' lists and the `unacked` hash are read (a message of a dead worker
    stays there until a live worker restores it, after the visibility timeout). Other
    transports (the embedded filesystem one included): unknown."""
    from celery import current_app

    app = app or _app or current_app
    wanted = {task_id.encode() for task_id in task_ids}
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            driver = conn.transport.driver_type
            if driver != "redis":
                return None
            channel: Any = conn.default_channel
            client = channel.client
            raw: list[bytes] = list(client.hvals(channel.unacked_key))
            for queue in set(queues) or {app.conf.task_default_queue}:
                for priority in channel.priority_steps:
                    key = channel._q_for_pri(queue, priority)
                    length = int(client.llen(key))
                    if len(raw) + length > BROKER_SCAN_LIMIT:
                        return None
                    for start in range(0, length, 1000):
                        raw.extend(client.lrange(key, start, start + 999))
    except Exception:
        logger.warning("taskboard: the broker could not say which messages it holds", exc_info=True)
        return None
    # A task id is a UUID: found anywhere in a message (its own, or a child's parent_id),
    # it counts as present. Erring that way only delays a LOST.
    present = set()
    for message in raw:
        blob = message if isinstance(message, bytes) else str(message).encode()
        present |= {task_id for task_id in wanted if task_id in blob}
    return {task_id.decode() for task_id in present}


_app: Any = None  # the Celery app of the web process that started a reconcile thread


# --- Run from the web ----------------------------------------------------------------------


def reconcile_from_web() -> None:
    """Reconcile now if nobody did within TASKBOARD_RECONCILE_INTERVAL (any web process):
    a dashboard poll calls this, so a deployment whose only worker died still shows LOST.

    Single-flight through a cache.add gate (this process's memory while the cache is down,
    so it still runs during a Redis outage). Runs in a thread of its own with its own
    database connection (the poll's queries and transaction are untouched), waited for at
    most WEB_WAIT_SECONDS. Never raises: a failing reconcile never breaks the poll."""
    interval = conf.RECONCILE_INTERVAL
    if interval <= 0:
        return
    if not once_per(GATE_KEY, int(math.ceil(interval))):
        return
    global _app
    from celery import current_app

    # Celery's current app is per thread: the reconcile thread is handed this one's.
    _app = getattr(current_app, "_get_current_object", lambda: current_app)()
    thread = threading.Thread(target=_reconcile_in_thread, name="taskboard-reconcile", daemon=True)
    thread.start()
    thread.join(WEB_WAIT_SECONDS)


def _reconcile_in_thread() -> None:
    try:
        close_old_connections()
        marked = executions_mark_lost()
        if marked:
            logger.info("taskboard: reconciliation from the web marked %d LOST", marked)
    except Exception:
        logger.exception("taskboard: reconciliation from the web failed")
    finally:
        try:
            connection.close()
        except Exception:
            logger.debug("taskboard: closing the reconcile connection failed", exc_info=True)
