"""The explicit API in a plain process (a management command, a view), no worker."""

from __future__ import annotations

import time
import uuid

import pytest

from taskboard.models import TaskExecution, TaskState
from taskboard.signals import execution_changed
from taskboard.utils import finish_task, start_task_tracking, update_task_progress
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def writes():
    seen: list[tuple[str | None, dict[str, object]]] = []

    def record(sender, lookup, state, fields, **kwargs):
        seen.append((state, fields))

    execution_changed.connect(record, dispatch_uid="test-progress-writes")
    yield seen
    execution_changed.disconnect(dispatch_uid="test-progress-writes")


def test_progress_writes_are_bounded_per_second_and_the_last_lands(writes, settings):
    settings.TASKBOARD_PROGRESS_WRITES_PER_SECOND = 4
    execution = start_task_tracking(str(uuid.uuid4()), "importar", "nomina")
    started = time.monotonic()
    for step in range(1, 501):
        update_task_progress(execution.id, step / 5, f"step {step}")
        time.sleep(0.002)
    elapsed = time.monotonic() - started
    wait_until(lambda: TaskExecution.objects.get(pk=execution.pk).progress == 100, timeout=3)
    stored = TaskExecution.objects.get(pk=execution.pk)
    assert stored.progress_message == "step 500"
    assert stored.state == TaskState.PROGRESS
    progress_writes = [w for w in writes if w[0] == TaskState.PROGRESS]
    assert 2 <= len(progress_writes) <= elapsed * 4 + 2, (len(progress_writes), elapsed)


def test_start_returns_the_existing_row_and_finish_is_final(writes):
    task_id = str(uuid.uuid4())
    first = start_task_tracking(task_id, "mi_tarea", "modulo")
    again = start_task_tracking(task_id, "mi_tarea", "modulo", display_name="Mi tarea")
    assert first.pk == again.pk and again.display_name == "Mi tarea"
    assert TaskExecution.objects.filter(task_id=task_id).count() == 1

    update_task_progress(first.id, 50, "Mitad completado")
    finish_task(first.id, success=False, error="Falló el banco")
    update_task_progress(first.id, 80, "tarde")  # late: must not move a finished task
    finish_task(first.id, success=True)
    time.sleep(0.7)

    stored = TaskExecution.objects.get(pk=first.pk)
    assert stored.state == TaskState.FAILURE
    assert stored.exception_message == "Falló el banco"
    assert (stored.progress, stored.progress_message) == (50, "Mitad completado")
    assert stored.duration is not None and stored.finished_at is not None


def test_progress_is_clamped(writes):
    execution = start_task_tracking(str(uuid.uuid4()), "x", "m")
    update_task_progress(execution.id, 250, "too far")
    wait_until(lambda: TaskExecution.objects.get(pk=execution.pk).progress == 100, timeout=3)
    update_task_progress(execution.task_id, -5, "back")
    wait_until(lambda: TaskExecution.objects.get(pk=execution.pk).progress == 0, timeout=3)
