"""Each worker records itself: a WorkerHeartbeat row, written by a taskboard-owned thread.

Runs in the worker's main process only (started at worker_ready, never in pool children).
The thread beats every TASKBOARD_HEARTBEAT_INTERVAL on its own: Celery's `heartbeat_sent`
stops during a warm shutdown, is absent with --without-heartbeat and is starved when a
task blocks the consumer's loop (-P solo), so liveness must not depend on it.

Each beat stamps `last_seen` with the database's clock (`now()` in the UPDATE itself), so
a worker whose clock is wrong is judged by the same clock as every other; `clock` keeps the
worker's own time of the snapshot, to compare with times the same worker wrote (a task's
started_at). `active` lists every task the worker runs, however many. `tracking` holds the
tracking write buffers' figures of the worker's processes, main and pool, summed
(tracking/figures.py says what is and is not counted).

A warm shutdown is said, not guessed: `draining_since` is set when it begins and the
thread keeps beating while the running tasks finish; at the end the tracking buffer is
flushed first, then `stopped_at` recorded with nothing active.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery import signals
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from taskboard.conf import conf
from taskboard.models import WorkerHeartbeat, capped
from taskboard.tracking.figures import worker_figures
from taskboard.tracking.forksafe import database_work
from taskboard.tracking.guard import log_failure
from taskboard.tracking.recorder import buffer

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0  # how long the shutdown waits for the beating thread to let go


@dataclass
class Beat:
    hostname: str
    fields: dict[str, Any] = field(default_factory=dict)


def active_requests() -> list[dict[str, str]]:
    """Every task this worker runs now (read from another thread than the consumer's:
    the set may change while it is copied, so the copy is retried)."""
    from celery.worker import state

    for _ in range(10):
        try:
            requests = list(state.active_requests)
        except RuntimeError:  # "Set changed size during iteration"
            continue
        return [{"id": str(request.id), "name": str(request.name)} for request in requests]
    return []


def snapshot(consumer: Any) -> Beat:
    """What this worker is doing now, read from Celery's in-process state."""
    from celery.worker import state

    try:
        queues = sorted(str(queue.name) for queue in consumer.task_consumer.queues)
    except (AttributeError, RuntimeError):  # the task consumer is not up yet
        queues = []
    try:
        loadavg: list[float] | None = [round(value, 2) for value in os.getloadavg()]
    except OSError:
        loadavg = None
    software = state.SOFTWARE_INFO
    return Beat(
        str(consumer.hostname),
        {
            "pid": os.getpid(),
            # The worker's clock when the snapshot was taken; last_seen is the database's.
            "clock": timezone.now(),
            "stopped_at": None,
            "concurrency": _concurrency(consumer),
            "queues": queues,
            "active": active_requests(),
            "processed": int(state.all_total_count[0]),
            "tracking": worker_figures(),
            "loadavg": loadavg,
            "software": capped(
                "software",
                f"{software.get('sw_ident', 'celery')} {software.get('sw_ver', '')}",
                WorkerHeartbeat,
            ),
        },
    )


def _concurrency(consumer: Any) -> int | None:
    pool = getattr(consumer, "pool", None)
    for value in (getattr(pool, "num_processes", None), getattr(pool, "limit", None)):
        if isinstance(value, int):
            return value
    controller = getattr(consumer, "controller", None)
    value = getattr(controller, "concurrency", None)
    return value if isinstance(value, int) else None


def record(beat: Beat, *, started_at: datetime | None = None, draining: bool = False) -> None:
    """One UPDATE every beat; the row is created only the first time (or after a prune).

    last_seen is the database's now(); draining_since too, set once when the warm
    shutdown begins and kept while it lasts (cleared by a worker that is not draining).
    """
    fields: dict[str, Any] = {
        **beat.fields,
        "last_seen": Now(),
        "draining_since": Coalesce(F("draining_since"), Now()) if draining else None,
    }
    if started_at is not None:
        fields["started_at"] = started_at
    hostname = capped("hostname", beat.hostname, WorkerHeartbeat)
    if WorkerHeartbeat.objects.filter(hostname=hostname).update(**fields):
        return
    created = {**fields, "draining_since": Now() if draining else None}
    try:
        with transaction.atomic():
            WorkerHeartbeat.objects.create(hostname=hostname, **created)
    except IntegrityError:  # another process created it meanwhile: update that one
        WorkerHeartbeat.objects.filter(hostname=hostname).update(**fields)


class HeartbeatWriter:
    """Beats from its own thread in the worker's main process, every HEARTBEAT_INTERVAL."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._consumer: Any = None
        self._started_at: datetime | None = None
        self._draining = False
        self._wake = threading.Condition()
        self._nudged = False
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def attach(self, consumer: Any) -> None:
        """The worker is ready: start beating (the first beat at once)."""
        with self._wake:
            self._consumer = consumer
            self._started_at = timezone.now()
            self._draining = False
            self._stopping = False
            self._nudged = True
            if not self.running:
                self._thread = threading.Thread(
                    target=self._run, name="taskboard-heartbeat", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def nudge(self) -> None:
        """Beat now rather than at the next interval (cheap: no database work here)."""
        with self._wake:
            self._nudged = True
            self._wake.notify()

    def drain(self) -> None:
        """A warm shutdown began: say so at once, and keep beating while tasks finish.
        Called from a signal handler: it only sets a flag and wakes the thread."""
        self._draining = True
        self.nudge()

    def _wait_for_next_beat(self) -> bool:
        """Sleep until the interval passes or someone nudges; False when stopping."""
        with self._wake:
            if not self._nudged and not self._stopping:
                self._wake.wait(timeout=conf.HEARTBEAT_INTERVAL)
            self._nudged = False
            return not self._stopping

    def _run(self) -> None:
        try:
            while self._wait_for_next_beat():
                self._beat_once()
        finally:
            with database_work():
                connection.close()

    def _beat_once(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        started_at, self._started_at = self._started_at, None
        try:
            beat = snapshot(consumer)
            with database_work():
                close_old_connections()
                record(beat, started_at=started_at, draining=self._draining)
        except Exception:
            log_failure("taskboard: could not record the heartbeat of %s", consumer.hostname)
            if started_at is not None:
                self._started_at = started_at
            with database_work():
                connection.close()  # a broken connection is not reused next beat

    def stop(self) -> None:
        """The worker is going away: say so at once, so the panel needs no threshold.

        The tracking buffer is flushed first: the final states of the tasks this worker
        ran are in the database before the row says it stopped (and reconciliation may
        then treat what still runs as lost)."""
        try:
            buffer.stop()
        except Exception:
            logger.exception("taskboard: could not flush the tracking writes at shutdown")
        with self._wake:
            consumer, self._consumer = self._consumer, None
            thread = self._thread
            self._stopping = True
            self._wake.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=STOP_TIMEOUT)
        if consumer is None:
            return
        beat = snapshot(consumer)
        beat.fields.update(active=[], stopped_at=timezone.now())
        try:
            record(beat, draining=self._draining)
        except Exception:
            logger.exception("taskboard: could not record that %s stopped", beat.hostname)
        finally:
            connection.close()


writer = HeartbeatWriter()
# A forked pool process is not the worker: it must not inherit the writer's thread or lock.
os.register_at_fork(after_in_child=writer._reset)


@signals.worker_ready.connect(weak=False, dispatch_uid="taskboard.heartbeat_ready")
def on_worker_ready(sender: Any = None, **_: Any) -> None:
    try:
        writer.attach(sender)
    except Exception:
        logger.exception("taskboard: could not start the heartbeat")


@signals.worker_shutting_down.connect(weak=False, dispatch_uid="taskboard.heartbeat_draining")
def on_worker_shutting_down(how: str | None = None, **_: Any) -> None:
    try:
        writer.drain()
    except Exception:
        logger.exception("taskboard: could not record the worker's warm shutdown")


@signals.worker_shutdown.connect(weak=False, dispatch_uid="taskboard.heartbeat_shutdown")
def on_worker_shutdown(**_: Any) -> None:
    try:
        writer.stop()
    except Exception:
        logger.exception("taskboard: could not record the worker's shutdown")
