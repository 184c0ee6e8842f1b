"""Each worker records itself: a WorkerHeartbeat row upserted from Celery's own heartbeat.

Runs in the worker's main process. `heartbeat_sent` fires every 2 s (with or without -E);
the snapshot is taken there (cheap, in memory) and written by a small thread, so the
consumer never waits on the database.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery import signals
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone

from taskboard.conf import conf
from taskboard.models import WorkerHeartbeat, capped
from taskboard.tracking.forksafe import database_work

logger = logging.getLogger(__name__)

MAX_ACTIVE_LISTED = 100


@dataclass
class Beat:
    hostname: str
    fields: dict[str, Any] = field(default_factory=dict)


def snapshot(consumer: Any) -> Beat:
    """What this worker is doing now, read from Celery's in-process state."""
    from celery.worker import state

    active = [
        {"id": str(request.id), "name": str(request.name)}
        for request in list(state.active_requests)[:MAX_ACTIVE_LISTED]
    ]
    try:
        queues = sorted(str(queue.name) for queue in consumer.task_consumer.queues)
    except AttributeError:  # the task consumer is not up yet
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
            "last_seen": timezone.now(),
            "stopped_at": None,
            "concurrency": _concurrency(consumer),
            "queues": queues,
            "active": active,
            "processed": int(state.all_total_count[0]),
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


def record(beat: Beat, *, started_at: datetime | None = None) -> None:
    """One UPDATE every beat; the row is created only the first time (or after a prune)."""
    fields = dict(beat.fields)
    if started_at is not None:
        fields["started_at"] = started_at
    hostname = capped("hostname", beat.hostname, WorkerHeartbeat)
    if not WorkerHeartbeat.objects.filter(hostname=hostname).update(**fields):
        try:
            with transaction.atomic():
                WorkerHeartbeat.objects.create(hostname=hostname, **fields)
        except IntegrityError:  # another process created it meanwhile: update that one
            WorkerHeartbeat.objects.filter(hostname=hostname).update(**fields)


class HeartbeatWriter:
    """Holds the latest beat and writes it from its own thread (latest wins)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._consumer: Any = None
        self._started_at: datetime | None = None
        self._pending: Beat | None = None
        self._last_written = 0.0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def attach(self, consumer: Any) -> None:
        self._consumer = consumer
        self._started_at = timezone.now()
        self._last_written = 0.0
        self.beat(force=True)

    def beat(self, *, force: bool = False) -> None:
        if self._consumer is None:
            return
        now = time.monotonic()
        if not force and now - self._last_written < conf.HEARTBEAT_INTERVAL - 0.5:
            return
        self._last_written = now
        with self._wake:
            self._pending = snapshot(self._consumer)
            self._wake.notify()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="taskboard-heartbeat", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._stopping:
                    self._wake.wait()
                if self._stopping and self._pending is None:
                    break
                beat: Beat | None = self._pending
                self._pending = None
            if beat is None:
                continue
            started_at, self._started_at = self._started_at, None
            try:
                with database_work():
                    close_old_connections()
                    record(beat, started_at=started_at)
            except Exception:
                logger.exception("taskboard: could not record the heartbeat of %s", beat.hostname)
                if started_at is not None:
                    self._started_at = started_at
        with database_work():
            connection.close()

    def stop(self) -> None:
        """The worker is going away: say so at once, so the panel needs no threshold."""
        consumer, self._consumer = self._consumer, None
        thread = self._thread
        with self._wake:
            self._stopping = True
            self._pending = None
            self._wake.notify()
        if thread is not None:
            thread.join(timeout=5)
        if consumer is None:
            return
        beat = snapshot(consumer)
        beat.fields.update(active=[], stopped_at=timezone.now())
        try:
            record(beat)
        except Exception:
            logger.exception("taskboard: could not record that %s stopped", beat.hostname)


writer = HeartbeatWriter()
# A forked pool process is not the worker: it must not inherit the writer's thread or lock.
os.register_at_fork(after_in_child=writer._reset)


@signals.worker_ready.connect(weak=False, dispatch_uid="taskboard.heartbeat_ready")
def on_worker_ready(sender: Any = None, **_: Any) -> None:
    try:
        writer.attach(sender)
    except Exception:
        logger.exception("taskboard: could not start the heartbeat")


@signals.heartbeat_sent.connect(weak=False, dispatch_uid="taskboard.heartbeat")
def on_heartbeat_sent(**_: Any) -> None:
    try:
        writer.beat()
    except Exception:
        logger.exception("taskboard: heartbeat failed")


@signals.worker_shutdown.connect(weak=False, dispatch_uid="taskboard.heartbeat_shutdown")
def on_worker_shutdown(**_: Any) -> None:
    try:
        writer.stop()
    except Exception:
        logger.exception("taskboard: could not record the worker's shutdown")
