"""Reconciliation: nothing stays "running" after its worker died."""

from __future__ import annotations

import signal
import subprocess
from datetime import timedelta

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
