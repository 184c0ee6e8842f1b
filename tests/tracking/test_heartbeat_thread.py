"""The worker's own heartbeat thread (taskboard.tracking.heartbeats), in this process.

A stand-in consumer replaces the Celery worker (what the thread reads of it is small);
the database is the real test database. Real workers are in tests/faults/test_false_lost.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from celery.worker import state
from django.utils import timezone

from taskboard.models import TaskExecution, TaskState, WorkerHeartbeat, database_now
from taskboard.tracking import heartbeats
from taskboard.tracking.heartbeats import HeartbeatWriter
from taskboard.tracking.recorder import Write, buffer
from tests.factories import make_execution
from tests.processes import wait_until

HOSTNAME = "thread@localhost"


class Consumer:
    """What the heartbeat reads from a Celery consumer."""

    hostname = HOSTNAME
    pool = None
    controller = None


@dataclass(frozen=True)
class Request:
    id: str
    name: str


@pytest.fixture
def writer(transactional_db: None, settings: Any) -> Iterator[HeartbeatWriter]:
    settings.TASKBOARD_HEARTBEAT_INTERVAL = 0.2
    writer = HeartbeatWriter()
    yield writer
    writer.stop()


def row() -> WorkerHeartbeat | None:
    return WorkerHeartbeat.objects.filter(hostname=HOSTNAME).first()


def beats_after(moment: Any) -> WorkerHeartbeat | None:
    beat = row()
    return beat if beat is not None and beat.last_seen > moment else None


def test_beats_on_its_own_without_celerys_heartbeat(writer):
    # Nothing sends heartbeat_sent here: the thread beats by itself, interval after interval.
    writer.attach(Consumer())
    first = wait_until(row, timeout=5)
    later = wait_until(lambda: beats_after(first.last_seen), timeout=5)
    wait_until(lambda: beats_after(later.last_seen), timeout=5)
    assert writer.running


def test_last_seen_is_the_databases_clock_and_clock_the_workers(writer, monkeypatch):
    # The worker's clock an hour behind (its timezone.now()): liveness must not care.
    behind = timedelta(hours=1)
    real_now = timezone.now
    monkeypatch.setattr(heartbeats, "timezone", SimpleNamespace(now=lambda: real_now() - behind))
    writer.attach(Consumer())
    beat = wait_until(row, timeout=5)
    database = database_now()
    assert abs((database - beat.last_seen).total_seconds()) < 5
    assert abs((database - behind - beat.clock).total_seconds()) < 5
    assert beat.is_online(now=database)


def test_every_running_task_is_listed(writer):
    requests = {Request(f"task-{n}", "tests.long") for n in range(250)}
    for request in requests:
        state.active_requests.add(request)
    try:
        writer.attach(Consumer())
        beat = wait_until(lambda: (b := row()) and len(b.active) == 250 and b, timeout=5)
    finally:
        for request in requests:
            state.active_requests.discard(request)
    assert {task["id"] for task in beat.active} == {r.id for r in requests}
    later = wait_until(lambda: (b := row()) and not b.active and b, timeout=5)
    assert later.active == []


def test_draining_worker_says_so_keeps_beating_and_is_online(writer):
    writer.attach(Consumer())
    wait_until(row, timeout=5)
    writer.drain()
    draining = wait_until(lambda: (b := row()) and b.draining_since and b, timeout=5)
    assert draining.is_online() and draining.is_draining()
    later = wait_until(lambda: beats_after(draining.last_seen), timeout=5)
    assert later.draining_since == draining.draining_since  # set once, kept
    assert later.stopped_at is None


def test_shutdown_flushes_the_tracking_writes_then_says_stopped(writer):
    execution = make_execution(state=TaskState.STARTED, worker=HOSTNAME)
    writer.attach(Consumer())
    wait_until(row, timeout=5)
    # A final state waiting in the buffer (as a task that just finished leaves it).
    buffer.put(
        Write(("task_id", execution.task_id), TaskState.SUCCESS, {"progress": 100}), delay=60
    )
    writer.stop()
    beat = row()
    assert beat is not None and beat.stopped_at is not None and beat.active == []
    assert not beat.is_online()
    assert TaskExecution.objects.get(pk=execution.pk).state == TaskState.SUCCESS
    assert not writer.running


def test_a_stale_beat_is_offline_draining_or_not(db):
    now = database_now()
    stale = now - timedelta(minutes=5)
    gone = WorkerHeartbeat.objects.create(
        hostname="gone@host", last_seen=stale, draining_since=stale
    )
    fresh = WorkerHeartbeat.objects.create(
        hostname="drains@host", last_seen=now, draining_since=now
    )
    stopped = WorkerHeartbeat.objects.create(hostname="stopped@host", last_seen=now, stopped_at=now)
    assert not gone.is_online(now=now) and not gone.is_draining(now=now)
    assert fresh.is_online(now=now) and fresh.is_draining(now=now)
    assert not stopped.is_online(now=now)
