"""Automatic tracking through a real Celery worker (prefork) on a real Redis."""

from __future__ import annotations

import time

import pytest
from celery import chain
from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.utils import timezone

from sgm.celery import app as celery_app
from sgm.contabilidad.tasks import AsientosDescuadradosError, cerrar_periodo, conciliar_banco
from sgm.nomina.tasks import consolidar_nomina, exportar_nominas
from taskboard.models import TaskExecution, TaskState, TaskTemplate
from taskboard.services.cancel import execution_cancel
from taskboard.tracking import flush_writes
from taskboard.tracking.handlers import refuse_cancelled
from tests import worker_tasks
from tests.factories import make_execution, make_user
from tests.processes import free_port, start_worker, wait_until

TIMEOUT = 30


def row(task_id: str) -> TaskExecution:
    return TaskExecution.objects.get(task_id=task_id)


def recorded(task_id: str) -> TaskExecution:
    """The row of a task this (non-request) process published: written behind, so soon."""
    found: TaskExecution = wait_until(
        lambda: TaskExecution.objects.filter(task_id=task_id).first(), timeout=5
    )
    return found


def wait_for_state(task_id: str, *states: str, timeout: float = TIMEOUT) -> TaskExecution:
    def reached() -> TaskExecution | None:
        execution = TaskExecution.objects.filter(task_id=task_id).first()
        return execution if execution and execution.state in states else None

    try:
        found: TaskExecution = wait_until(reached, timeout)
        return found
    except TimeoutError:
        current = TaskExecution.objects.filter(task_id=task_id).first()
        raise AssertionError(
            f"{task_id} never reached {states}: {current and current.state}"
        ) from None


def test_success_is_recorded_with_worker_timing_and_result(worker):
    result = consolidar_nomina.delay(7, empleados=10, pausa=0.03)
    pending = recorded(result.id)
    assert pending.state != TaskState.SUCCESS  # recorded while the task still runs
    assert pending.template_id == "nomina.consolidar"

    assert result.get(timeout=TIMEOUT)["empleados"] == 10
    execution = wait_for_state(result.id, TaskState.SUCCESS)
    assert execution.module == "nomina"
    assert execution.display_name == "Consolidar nómina"
    assert execution.task_name == "sgm.nomina.tasks.consolidar_nomina"
    assert execution.progress == 100
    assert execution.worker == worker.name
    assert execution.queue == "celery"
    assert execution.args_summary == "[7]"
    assert '"empleados": 10' in execution.kwargs_summary
    assert '"total_neto"' in execution.result_summary
    assert execution.started_at is not None and execution.finished_at is not None
    assert execution.created_at <= execution.started_at <= execution.finished_at
    assert execution.duration is not None and execution.duration >= 0.3
    assert execution.exception_type == ""
    assert TaskTemplate.objects.filter(key="nomina.consolidar", module="nomina").exists()


def test_business_failure_keeps_the_error_and_traceback(worker):
    result = cerrar_periodo.delay("2026-10")
    with pytest.raises(AsientosDescuadradosError):
        result.get(timeout=TIMEOUT)
    execution = wait_for_state(result.id, TaskState.FAILURE)
    assert execution.exception_type == "sgm.contabilidad.tasks.AsientosDescuadradosError"
    assert "asientos descuadrados A-102" in execution.exception_message
    assert "raise AsientosDescuadradosError(" in execution.traceback
    assert execution.module == "contabilidad"
    assert execution.finished_at is not None and execution.duration is not None


def test_retry_then_success_counts_retries(worker, redis_client):
    result = conciliar_banco.delay("ES12-3456", fallos=2)
    assert result.get(timeout=TIMEOUT)["intentos"] == 3
    execution = wait_for_state(result.id, TaskState.SUCCESS)
    assert execution.retries == 2
    assert execution.exception_message == ""  # the transient error is history now
    assert int(redis_client.get(worker_tasks.write_counter_key(result.id, "RETRY")) or 0) == 2
    assert TaskExecution.objects.filter(task_id=result.id).count() == 1


def test_revoke_before_start(worker):
    # A queue the worker does not consume yet: the task waits there like behind a backlog.
    result = worker_tasks.add.apply_async((1, 2), queue="held")
    assert recorded(result.id).state == TaskState.PENDING
    celery_app.control.revoke(result.id)
    try:
        celery_app.control.add_consumer("held", destination=[worker.name], reply=True)
        execution = wait_for_state(result.id, TaskState.REVOKED)
    finally:
        celery_app.control.cancel_consumer("held", destination=[worker.name], reply=True)
    assert execution.exception_message == "Revoked before it started"
    assert execution.started_at is None
    assert execution.worker == worker.name
    assert execution.result_summary == ""


def test_a_task_cancelled_while_no_worker_listened_never_runs(spawn_worker):
    # Queued where no worker consumes, and cancelled: Celery's revoke broadcast reaches
    # only the workers up now, and the worker started below has no peer to learn it from.
    result = worker_tasks.add.apply_async((1, 2), queue="nobody-yet")
    assert execution_cancel(execution=recorded(result.id), by=make_user(staff=True))
    late = spawn_worker(queues=("nobody-yet",))
    execution = wait_for_state(result.id, TaskState.REVOKED)
    assert execution.started_at is None
    assert execution.worker == late.name
    assert execution.exception_message == "Revoked before it started"


def test_a_starting_worker_refuses_exactly_the_unfinished_cancelled_tasks(db):
    from celery.worker import state

    asked = timezone.now()
    queued = make_execution(state=TaskState.PENDING, cancel_requested_at=asked)
    redelivered = make_execution(state=TaskState.STARTED, cancel_requested_at=asked)
    finished = make_execution(state=TaskState.REVOKED, cancel_requested_at=asked)
    uncancelled = make_execution(state=TaskState.PENDING)
    try:
        refuse_cancelled()
        assert queued.task_id in state.revoked and redelivered.task_id in state.revoked
        assert finished.task_id not in state.revoked
        assert uncancelled.task_id not in state.revoked
        # Called inside a transaction (an in-process test worker): the connection stays.
        assert TaskExecution.objects.count() == 4
    finally:
        for execution in (queued, redelivered, finished, uncancelled):
            state.revoked.discard(execution.task_id)


def test_terminate_while_running(worker):
    result = exportar_nominas.delay(3, paginas=200, pausa=0.05)
    recorded(result.id)
    running = wait_until(lambda: (r := row(result.id)).progress >= 2 and r, TIMEOUT)
    assert running.state == TaskState.PROGRESS and running.started_at is not None
    celery_app.control.revoke(result.id, terminate=True, signal="SIGTERM")
    execution = wait_for_state(result.id, TaskState.REVOKED, timeout=10)
    assert execution.exception_message == "Terminated (SIGTERM)"
    assert 0 < execution.progress < 100
    time.sleep(1.0)  # nothing of the killed task may land afterwards
    assert row(result.id).state == TaskState.REVOKED


def test_progress_is_coalesced_and_reaches_100(worker, redis_client):
    steps = 200
    result = worker_tasks.progress_steps.delay(steps, 0.006)
    recorded(result.id)
    seen: list[int] = []

    def finished() -> bool:
        execution = row(result.id)
        seen.append(execution.progress)
        return execution.state == TaskState.SUCCESS

    wait_until(finished, TIMEOUT, interval=0.02)
    execution = row(result.id)
    assert execution.progress == 100
    assert seen == sorted(seen), "progress went backwards"
    assert any(0 < value < 100 for value in seen), f"no intermediate progress seen: {set(seen)}"

    progress_writes = int(
        redis_client.get(worker_tasks.write_counter_key(result.id, "PROGRESS")) or 0
    )
    # 200 reports over the run; at 2 writes/s the worker may write at most ~2 per second.
    assert execution.duration is not None and execution.duration >= 1.2
    allowed = int(execution.duration * 2) + 2
    assert 1 <= progress_writes <= allowed, (progress_writes, execution.duration)
    assert progress_writes < steps / 10


def test_last_progress_lands_while_the_task_still_runs(worker):
    result = worker_tasks.progress_then_wait.delay(2.5)
    recorded(result.id)
    # The five reports come within a millisecond: most are coalesced, the last must land.
    wait_until(lambda: row(result.id).progress == 50, timeout=2.0)
    execution = row(result.id)
    assert execution.state == TaskState.PROGRESS
    assert execution.progress_message == "at 50"
    assert result.get(timeout=TIMEOUT) == "done"


def test_chain_keeps_parent_and_root(worker):
    result = chain(worker_tasks.add.s(2, 3), worker_tasks.add.s(4)).apply_async()
    assert result.get(timeout=TIMEOUT) == 9
    second = wait_for_state(result.id, TaskState.SUCCESS)
    assert result.parent is not None
    first_id = str(result.parent.id)  # type: ignore[attr-defined]
    first = wait_for_state(first_id, TaskState.SUCCESS)
    assert first.root_task_id == "" and first.parent_task_id == ""  # its own root
    assert second.parent_task_id == first_id
    assert second.root_task_id == first_id
    assert second.args_summary == "[5, 4]"
    assert first.result_summary == "5" and second.result_summary == "9"


def test_secrets_never_reach_the_database(worker):
    result = worker_tasks.sign_in.delay("ana", "hunter2", options={"api_key": "k-42", "retries": 3})
    result.get(timeout=TIMEOUT)
    execution = wait_for_state(result.id, TaskState.SUCCESS)
    stored = execution.args_summary + execution.kwargs_summary
    assert "hunter2" not in stored and "k-42" not in stored
    assert execution.args_summary == '["ana", "[REDACTED]"]'
    assert '"retries": 3' in execution.kwargs_summary


def test_late_and_duplicate_signals_change_nothing(worker):
    from taskboard.tracking import update_task_progress
    from taskboard.tracking.recorder import Write, apply

    result = consolidar_nomina.delay(1, empleados=2, pausa=0.01)
    result.get(timeout=TIMEOUT)
    done = wait_for_state(result.id, TaskState.SUCCESS)

    # A late progress write, a duplicate STARTED and a RECEIVED that arrives last.
    update_task_progress(result.id, 30, "late")
    flush_writes()
    assert not apply(Write(("task_id", result.id), TaskState.STARTED, {"worker": "other"}))
    assert not apply(Write(("task_id", result.id), TaskState.RECEIVED, {"worker": "other"}))
    # A duplicate publish of the same id (at-least-once delivery, a re-sent message).
    consolidar_nomina.apply_async(
        (1,), {"empleados": 1, "pausa": 0}, task_id=result.id, queue="parked"
    )
    flush_writes()
    # And a duplicate SUCCESS from another process.
    assert not apply(Write(("task_id", result.id), TaskState.SUCCESS, {"progress": 100}))

    after = row(result.id)
    assert TaskExecution.objects.filter(task_id=result.id).count() == 1
    assert (after.state, after.progress, after.progress_message) == (
        TaskState.SUCCESS,
        100,
        done.progress_message,
    )
    assert after.worker == worker.name
    assert after.finished_at == done.finished_at
    celery_app.control.purge()


def test_child_task_inherits_the_owner(worker, django_user_model):
    from taskboard.tracking.ownership import launched_by

    owner = django_user_model.objects.create_user("carmen", password="x-123456789")
    with launched_by(owner):
        result = worker_tasks.spawn_child.delay()
    child_id = result.get(timeout=TIMEOUT)
    child = wait_for_state(child_id, TaskState.SUCCESS)
    assert row(result.id).user_id == owner.pk
    assert child.user_id == owner.pk
    assert child.parent_task_id == result.id


def test_user_id_argument_sets_the_owner(worker, django_user_model):
    owner = django_user_model.objects.create_user("lucia", password="x-123456789")
    result = consolidar_nomina.delay(4, owner.pk, empleados=1, pausa=0)
    ghost = consolidar_nomina.delay(4, user_id=987654, empleados=1, pausa=0)
    result.get(timeout=TIMEOUT)
    ghost.get(timeout=TIMEOUT)
    assert wait_for_state(result.id, TaskState.SUCCESS).user_id == owner.pk
    # A user_id that names nobody: the task is still recorded, just without an owner.
    assert wait_for_state(ghost.id, TaskState.SUCCESS).user_id is None


@pytest.mark.django_db(transaction=True)
def test_unreachable_database_leaves_the_task_result_intact(worker_process, redis_server, tmp_path):
    # The worker's database is a PostgreSQL port where nothing listens: every tracking
    # write fails for real; the tasks must run and return as if nothing happened.
    broken = start_worker(
        celery_app,
        tmp=tmp_path,
        broker_url=redis_server.url,
        db_url=f"postgres://postgres@127.0.0.1:{free_port()}/nowhere",
        queues=("broken",),
        concurrency=1,
    )
    try:
        started = time.monotonic()
        added = worker_tasks.add.apply_async((20, 22), queue="broken")
        steps = worker_tasks.progress_steps.apply_async((20, 0.01), queue="broken")
        assert added.get(timeout=TIMEOUT) == 42
        assert steps.get(timeout=TIMEOUT) == 20
        assert time.monotonic() - started < 15
        # The publisher's own database works, so the rows exist, stuck where the worker
        # could not move them (reconciliation's job, not the task's).
        assert recorded(added.id).state == TaskState.PENDING
        log = broken.log()
        assert "taskboard: tracking failed" in log or "taskboard: could not record" in log
        assert "succeeded" in log
    finally:
        broken.stop()
    celery_app.control.purge()


def test_untracked_names_are_excluded(worker, settings):
    settings.TASKBOARD_EXCLUDE = ["tests.worker_tasks.add", "celery.*"]
    excluded = worker_tasks.add.apply_async((1, 1), queue="parked")
    kept = worker_tasks.sign_in.apply_async(("a", "b"), queue="parked")
    flush_writes()
    assert not TaskExecution.objects.filter(task_id=excluded.id).exists()
    assert TaskExecution.objects.filter(task_id=kept.id).exists()

    settings.TASKBOARD_EXCLUDE = ["celery.*"]
    settings.TASKBOARD_TRACK = "decorated"
    plain = worker_tasks.add.apply_async((1, 1), queue="parked")
    decorated = cerrar_periodo.apply_async(("2026-11",), queue="parked")
    flush_writes()
    assert not TaskExecution.objects.filter(task_id=plain.id).exists()
    assert TaskExecution.objects.filter(task_id=decorated.id).exists()
    celery_app.control.purge()


def test_result_waits_are_bounded(worker):
    # Sanity of the harness itself: a task on an unconsumed queue never runs.
    result = worker_tasks.add.apply_async((1, 1), queue="parked")
    with pytest.raises(CeleryTimeoutError):
        result.get(timeout=0.5)
    assert recorded(result.id).state == TaskState.PENDING
    celery_app.control.purge()
