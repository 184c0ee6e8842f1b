"""Reconciliation: nothing stays "running" after its worker died."""

from __future__ import annotations

import json
import signal
import subprocess
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings as project_settings
from django.utils import timezone

from taskboard.models import RUNNING_STATES, TaskExecution, TaskState, WorkerHeartbeat
from taskboard.services.reconcile import executions_mark_lost
from taskboard.tasks import mark_lost
from tests.factories import make_execution
from tests.processes import wait_until
from tests.worker_tasks import progress_then_wait


def test_task_of_a_killed_worker_becomes_lost(spawn_worker, settings):
    settings.TASKBOARD_WORKER_OFFLINE_AFTER = 2
    worker = spawn_worker(queues=("doomed",))
    result = progress_then_wait.apply_async((60,), queue="doomed")
    running = wait_until(
        lambda: TaskExecution.objects.filter(
            task_id=result.id, state__in=RUNNING_STATES, worker=worker.name
        ).first(),
        timeout=15,
    )
    assert executions_mark_lost() == 0  # its worker is alive: it is really running
    # The machine dies: pool processes first, then the worker, no goodbye from anyone.
    subprocess.run(["pkill", "-KILL", "-P", str(worker.process.pid)], check=False)
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait(timeout=10)
    wait_until(lambda: executions_mark_lost() == 1, timeout=2 + 4, interval=0.5)
    running.refresh_from_db()
    assert running.state == TaskState.LOST and running.finished_at is not None
    assert running.exception_type == "WorkerLostError" and worker.name in running.exception_message
    assert executions_mark_lost() == 0  # LOST is final: marked once


def test_restarted_worker_loses_what_its_previous_process_ran(db):
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="w1@host", started_at=now, last_seen=now)
    before = make_execution(
        worker="w1@host", state=TaskState.PROGRESS, started_at=now - timedelta(minutes=5)
    )
    current = make_execution(worker="w1@host", state=TaskState.STARTED, started_at=now)
    elsewhere = make_execution(
        worker="other@host", state=TaskState.STARTED, started_at=now - timedelta(hours=1)
    )
    finished = make_execution(worker="w1@host", state=TaskState.SUCCESS, started_at=now)
    assert mark_lost() == 1  # the periodic task calls the same service
    states = {
        e.pk: e.state
        for e in TaskExecution.objects.filter(
            pk__in=[before.pk, current.pk, elsewhere.pk, finished.pk]
        )
    }
    assert states == {
        before.pk: TaskState.LOST,
        current.pk: TaskState.STARTED,
        elsewhere.pk: TaskState.STARTED,  # no heartbeat from it: nothing says it is gone
        finished.pk: TaskState.SUCCESS,
    }


def test_stopped_worker_loses_its_running_tasks_at_once(db):
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="w2@host", last_seen=now, stopped_at=now)
    execution = make_execution(worker="w2@host", state=TaskState.STARTED, started_at=now)
    assert executions_mark_lost() == 1
    execution.refresh_from_db()
    assert execution.state == TaskState.LOST


def test_beat_runs_the_reconciliation():
    schedule = project_settings.CELERY_BEAT_SCHEDULE["taskboard-mark-lost"]
    assert schedule["task"] == mark_lost.name == "taskboard.mark_lost"
    assert isinstance(schedule["schedule"], float) and schedule["schedule"] <= 60


# --- Rule 2: a live worker that no longer runs the task ------------------------------------


def _live_beat(
    hostname: str,
    *,
    active: list[dict[str, str]],
    clock: datetime | None = None,
    started_at: datetime | None = None,
) -> WorkerHeartbeat:
    now = timezone.now()
    return WorkerHeartbeat.objects.create(
        hostname=hostname,
        started_at=started_at or now - timedelta(hours=1),
        last_seen=now,
        clock=clock or now,
        active=active,
    )


def test_live_worker_that_no_longer_runs_a_task_loses_it(db):
    now = timezone.now()
    kept = make_execution(
        worker="w3@host", state=TaskState.PROGRESS, started_at=now - timedelta(minutes=3)
    )
    dead = make_execution(
        worker="w3@host", state=TaskState.STARTED, started_at=now - timedelta(minutes=2)
    )
    fresh = make_execution(
        worker="w3@host", state=TaskState.STARTED, started_at=now - timedelta(seconds=1)
    )
    _live_beat("w3@host", active=[{"id": kept.task_id, "name": kept.task_name}], clock=now)
    assert executions_mark_lost(now=now) == 0  # missing once: maybe a write on its way
    later = now + timedelta(seconds=11)  # the next beats still do not list it
    WorkerHeartbeat.objects.filter(hostname="w3@host").update(last_seen=later, clock=later)
    assert executions_mark_lost(now=later) == 1
    states = dict(TaskExecution.objects.filter(worker="w3@host").values_list("pk", "state"))
    # Listed: running. Missing twice: lost. Started within the margin: not accepted yet.
    assert states == {
        kept.pk: TaskState.PROGRESS,
        dead.pk: TaskState.LOST,
        fresh.pk: TaskState.STARTED,
    }
    dead.refresh_from_db()
    assert dead.lost_at is not None and dead.finished_at is not None
    assert dead.exception_type == "WorkerLostError" and "no longer runs" in dead.exception_message


def test_a_beat_without_a_usable_active_list_says_nothing(db):
    now = timezone.now()
    old = now - timedelta(minutes=5)
    for name, active, clock in [
        ("noclock@host", [], None),  # an old worker: no clock of its own in the beat
        ("nolist@host", None, now),
        ("partial@host", [{"id": "x", "truncated": True}], now),
        ("odd@host", [{"name": "without id"}], now),
    ]:
        WorkerHeartbeat.objects.create(
            hostname=name, started_at=old - timedelta(hours=1), last_seen=now,
            clock=clock, active=active if active is not None else {"not": "a list"},
        )  # fmt: skip
        make_execution(worker=name, state=TaskState.STARTED, started_at=old)
    assert executions_mark_lost() == 0


def test_a_task_running_on_another_live_worker_is_never_lost(db):
    """An idempotent task given back when its worker died runs again elsewhere: the row
    still names the first worker until the new run writes, and is not lost meanwhile."""
    now = timezone.now()
    moved = make_execution(
        worker="gone@host", state=TaskState.STARTED, started_at=now - timedelta(minutes=5)
    )
    WorkerHeartbeat.objects.create(
        hostname="gone@host", last_seen=now - timedelta(minutes=1), clock=now - timedelta(minutes=1)
    )
    _live_beat("alive@host", active=[{"id": moved.task_id, "name": moved.task_name}])
    assert executions_mark_lost() == 0


def test_liveness_is_judged_by_the_database_clock(db, settings):
    """Without `now`, the database's clock decides (on SQLite it is this one)."""
    now = timezone.now()
    WorkerHeartbeat.objects.create(
        hostname="late@host",
        started_at=now - timedelta(hours=1),
        last_seen=now - timedelta(seconds=30),
    )
    running = make_execution(worker="late@host", state=TaskState.STARTED, started_at=now)
    assert executions_mark_lost(now=now - timedelta(seconds=25)) == 0  # seen 5 s "ago"
    assert executions_mark_lost() == 1  # by the database's clock: 30 s silent
    running.refresh_from_db()
    assert running.state == TaskState.LOST


# --- Rule 3: messages lost with their worker ------------------------------------------------


def test_received_message_of_a_dead_worker_is_lost_once_proven_gone(db, settings, redis_client):
    settings.TASKBOARD_WORKER_OFFLINE_AFTER = 10
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="dead@host", last_seen=now - timedelta(minutes=1))
    gone = make_execution(
        worker="dead@host", state=TaskState.RECEIVED, queue="celery", received_at=now
    )
    queued = make_execution(
        worker="dead@host", state=TaskState.RECEIVED, queue="celery", received_at=now
    )
    held = make_execution(
        worker="dead@host", state=TaskState.RECEIVED, queue="celery", received_at=now
    )
    waiting = make_execution(state=TaskState.PENDING, queue="celery")  # just published
    long_ago = now - timedelta(minutes=5)
    vanished = make_execution(state=TaskState.PENDING, queue="celery", created_at=long_ago)
    backlog = make_execution(state=TaskState.PENDING, queue="celery", created_at=long_ago)
    redis_client.rpush("celery", json.dumps({"headers": {"id": backlog.task_id}}))
    # Still in the broker: one queued again, one unacknowledged (held by a worker).
    redis_client.lpush("celery", json.dumps({"headers": {"id": queued.task_id}}))
    redis_client.hset(
        "unacked", "tag-1", json.dumps([{"headers": {"id": held.task_id}}, "", "celery"])
    )
    try:
        assert executions_mark_lost(now=now) == 0  # seen gone once: not yet proof
        assert executions_mark_lost(now=now + timedelta(seconds=5)) == 0  # too soon
        assert executions_mark_lost(now=now + timedelta(seconds=11)) == 2
    finally:
        redis_client.delete("celery", "unacked")
    states = dict(TaskExecution.objects.values_list("pk", "state"))
    assert states[gone.pk] == TaskState.LOST
    assert states[queued.pk] == states[held.pk] == TaskState.RECEIVED
    assert states[waiting.pk] == states[backlog.pk] == TaskState.PENDING  # in the broker
    # Published long ago, in no queue and held by no worker: taken by a worker that died.
    assert states[vanished.pk] == TaskState.LOST
    gone.refresh_from_db()
    assert gone.exception_message == "Message lost with worker dead@host."
    assert gone.lost_at is not None


def test_received_messages_are_not_lost_when_the_broker_cannot_tell(db, settings):
    from sgm.celery import app

    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="dead2@host", last_seen=now - timedelta(minutes=1))
    make_execution(worker="dead2@host", state=TaskState.RECEIVED, queue="celery", received_at=now)
    broker = app.conf.broker_url
    app.conf.update(broker_url="redis://127.0.0.1:9/0")  # nothing listens there
    try:
        for seconds in (0, 20, 40):
            assert executions_mark_lost(now=now + timedelta(seconds=seconds)) == 0
    finally:
        app.conf.update(broker_url=broker)


# --- From the web -----------------------------------------------------------------------------


def test_web_reconciles_at_most_once_per_interval(transactional_db, settings):
    from django.core.cache import cache

    from taskboard.services.reconcile import GATE_KEY, reconcile_from_web

    settings.TASKBOARD_RECONCILE_INTERVAL = 30
    cache.delete(GATE_KEY)
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="w9@host", last_seen=now, stopped_at=now)
    first = make_execution(worker="w9@host", state=TaskState.STARTED, started_at=now)
    reconcile_from_web()
    wait_until(lambda: TaskExecution.objects.get(pk=first.pk).state == TaskState.LOST, 10)
    second = make_execution(worker="w9@host", state=TaskState.STARTED, started_at=now)
    reconcile_from_web()  # within the interval: nothing runs
    second.refresh_from_db()
    assert second.state == TaskState.STARTED
    cache.delete(GATE_KEY)


def test_beat_runs_the_reconciliation_on_its_own_queue():
    schedule: dict[str, Any] = project_settings.CELERY_BEAT_SCHEDULE["taskboard-mark-lost"]
    assert schedule["options"]["queue"] == "taskboard"
    assert 0 < schedule["options"]["expires"] <= schedule["schedule"]
    assert project_settings.CELERY_TASK_ROUTES["taskboard.mark_lost"] == {"queue": "taskboard"}
    assert getattr(mark_lost, "queue", None) == "taskboard"
