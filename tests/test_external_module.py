"""A module outside the project, using only the seed's calls, with a real worker."""

from __future__ import annotations

import pytest

from taskboard.models import TaskExecution, TaskState
from taskboard.tracking.ownership import launched_by
from taskboard.utils import get_module_stats, get_user_tasks
from tests.external_app.facturacion import emitir_facturas, validar_facturas
from tests.processes import wait_until


def test_seed_calls_give_correct_rows_and_stats(worker, django_user_model):
    ana = django_user_model.objects.create_user("ana", password="x-123456789")
    other = django_user_model.objects.create_user("otro", password="x-123456789")

    emitted = [emitir_facturas.delay(lote, ana.pk, facturas=4) for lote in (1, 2, 3)]
    with launched_by(ana):
        validated = [validar_facturas.delay(lote) for lote in (10, 11)]  # 11 fails
    foreign = validar_facturas.delay(20, other.pk)

    for result in [*emitted, foreign]:
        result.get(timeout=30)
    assert validated[0].get(timeout=30) == "ok"
    with pytest.raises(Exception, match="sin NIF"):
        validated[1].get(timeout=30)

    ids = [r.id for r in [*emitted, *validated, foreign]]
    wait_until(
        lambda: (
            TaskExecution.objects.filter(
                task_id__in=ids, state__in=[TaskState.SUCCESS, TaskState.FAILURE]
            ).count()
            == len(ids)
        ),
        timeout=30,
    )

    # start_task_tracking returned the automatic row: one row per task id, never two.
    assert TaskExecution.objects.filter(task_id__in=ids).count() == len(ids)
    first = TaskExecution.objects.get(task_id=emitted[0].id)
    assert (first.state, first.progress, first.module) == (TaskState.SUCCESS, 100, "facturacion")
    assert first.user_id == ana.pk
    assert '"facturas": 4' in first.result_summary  # finish_task's result, not the return
    assert first.template_id == "facturacion.emitir"

    failed = TaskExecution.objects.get(task_id=validated[1].id)
    assert failed.state == TaskState.FAILURE and "sin NIF" in failed.exception_message
    assert failed.user_id == ana.pk

    mine = list(get_user_tasks(ana, module="facturacion"))
    assert {r.task_id for r in mine} == {r.id for r in [*emitted, *validated]}
    assert [r.created_at for r in mine] == sorted((r.created_at for r in mine), reverse=True)

    stats = get_module_stats("facturacion", days=7)
    assert stats.total == 6
    assert stats.counts[TaskState.SUCCESS] == 5
    assert stats.counts[TaskState.FAILURE] == 1
    assert stats.success_rate == pytest.approx(5 / 6)
    assert stats.running == 0
    assert stats.p50_duration is not None and stats.p50_duration > 0
