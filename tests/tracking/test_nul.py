"""F7: a NUL (or another control character) in a task's data never keeps its row from
being written, and start_task_tracking never raises into the caller.

PostgreSQL refuses a NUL in text and `\\u0000` in JSON (and with it the whole row): run
this module on it too (DATABASE_URL=postgres://...). The worker tests publish from here
and run on the session's real worker."""

from __future__ import annotations

import time
import uuid

from django.db import connection
from django.utils import timezone

from taskboard.models import TERMINAL_STATES, TaskExecution, TaskState
from taskboard.tracking import flush_writes
from taskboard.tracking.registry import meta_for
from taskboard.tracking.running import Running, running_tasks
from taskboard.utils import finish_task, start_task_tracking, update_task_progress
from tests import worker_tasks
from tests.external_app.facturacion import emitir_facturas
from tests.processes import wait_until

TIMEOUT = 30


def final(task_id: str) -> TaskExecution:
    def found() -> TaskExecution | None:
        row = TaskExecution.objects.filter(task_id=task_id).first()
        return row if row is not None and row.state in TERMINAL_STATES else None

    try:
        execution: TaskExecution = wait_until(found, timeout=TIMEOUT)
    except TimeoutError:
        row = TaskExecution.objects.filter(task_id=task_id).first()
        raise AssertionError(f"{task_id}: no final row ({row and row.state})") from None
    return execution


def test_nul_in_arguments_and_result_through_a_real_worker(worker):
    result = worker_tasks.add.apply_async(("a\x00b", "c"))  # add concatenates strings too
    outcome: object = result.get(timeout=TIMEOUT)
    assert outcome == "a\x00bc"  # the task got its arguments intact
    execution = final(result.id)
    assert execution.state == TaskState.SUCCESS
    assert execution.args_summary == '["a\\u0000b", "c"]'
    assert execution.result_summary == '"a\\u0000bc"'
    # Not kept for a retry: JSON with \u0000 is refused, and an altered call is not the call.
    assert execution.call is None


def test_nul_in_an_error_message_through_a_real_worker(worker):
    result = worker_tasks.log_in_fails.delay("ana\x00\x1b[31m", "pw")
    execution = final(result.id)
    assert execution.state == TaskState.FAILURE
    assert execution.exception_message == "ana\\x00\\x1b[31m could not log in"
    assert "ana\\x00\\x1b[31m could not log in" in execution.traceback
    assert "\x00" not in execution.traceback


def test_a_task_tracking_itself_with_nul_in_its_arguments_runs_to_the_end(worker):
    """start_task_tracking inside the task builds the row from the task's own arguments:
    it used to raise DataError into the task on PostgreSQL."""
    result = emitir_facturas.apply_async(("7\x00",), {"facturas": 2})
    assert result.get(timeout=TIMEOUT) == 2
    execution = final(result.id)
    assert execution.state == TaskState.SUCCESS and execution.progress == 100
    assert execution.args_summary == '["7\\u0000"]'
    assert '"lote": "7\\u0000"' in execution.result_summary


def running(task_id: str, *args: object, **kwargs: object) -> Running:
    return Running(
        task_id=task_id,
        meta=meta_for("tests.worker_tasks.add"),
        started_at=timezone.now(),
        started_monotonic=time.monotonic(),
        worker="w@host",
        queue="celery",
        retries=0,
        args=tuple(args),
        kwargs=dict(kwargs),
    )


def test_start_task_tracking_with_nul_everywhere_writes_the_row(transactional_db):
    task_id = str(uuid.uuid4())
    running_tasks[task_id] = running(task_id, "x\x00", nota={"k\x00": "v\x00"})
    try:
        execution = start_task_tracking(task_id, "importar\x00", "nomina\x00", display_name="D\x00")
    finally:
        del running_tasks[task_id]
    row = TaskExecution.objects.get(task_id=task_id)
    assert execution.pk == row.pk
    assert row.module == "nomina\\x00" and row.display_name == "D\\x00"
    assert row.args_summary == '["x\\u0000"]' and row.call is None

    update_task_progress(execution, 40, "paso\x00 2")
    flush_writes()
    row.refresh_from_db()
    assert row.progress == 40 and row.progress_message == "paso\\x00 2"

    finish_task(execution, success=False, error="mal\x00")
    row.refresh_from_db()
    assert row.state == TaskState.FAILURE and row.exception_message == "mal\\x00"


def test_finish_task_with_nul_in_the_result(transactional_db):
    execution = start_task_tracking(str(uuid.uuid4()), "importar", "nomina")
    finish_task(execution, result={"texto\x00": "a\x00"})
    row = TaskExecution.objects.get(pk=execution.pk)
    assert row.state == TaskState.SUCCESS and row.result_summary == '{"texto\\u0000": "a\\u0000"}'


def test_start_task_tracking_never_raises_into_the_caller(transactional_db):
    """A row the database refuses whatever we do (a NUL in the task id itself, on
    PostgreSQL): logged, and the caller gets an execution to go on with."""
    task_id = f"nul\x00{uuid.uuid4()}"
    execution = start_task_tracking(task_id, "importar", "nomina")
    assert execution.task_id == task_id
    update_task_progress(execution, 10, "sigue")  # and reporting on it does not raise
    if connection.vendor == "postgresql":
        assert execution.pk is None
        assert not TaskExecution.objects.filter(task_id__startswith="nul").exists()
    else:
        assert TaskExecution.objects.get(task_id=task_id).pk == execution.pk
