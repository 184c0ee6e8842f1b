"""F10: a bulk action on "all matching" reaches every matching row, not the newest 10,000:
the confirmation counts them all, the action walks them in batches (one batch in memory),
and rows created after the confirmation are left alone."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from taskboard.models import TaskExecution, TaskState
from tests.bulk_pages import confirmation_page, run
from tests.factories import client_for, make_execution

MANY = 10_050  # more than the old cap (TASKBOARD_BULK_MAX_ROWS, 10,000)


def _bulk_rows(count: int, **fields: Any) -> list[TaskExecution]:
    rows = [
        TaskExecution(
            task_id=f"bulk-all-{uuid.uuid4()}",
            task_name="sgm.contabilidad.tasks.cierre",
            display_name="Cierre",
            **fields,
        )
        for _ in range(count)
    ]
    return TaskExecution.objects.bulk_create(rows, batch_size=2000)


def test_cancel_all_matching_reaches_the_oldest_running_task(staff, settings):
    # The oldest rows (lowest pks) are the running ones the old cap never reached.
    oldest = _bulk_rows(40, module="contabilidad", state=TaskState.PROGRESS)
    _bulk_rows(MANY - 40, module="contabilidad", state=TaskState.PENDING)
    finished = _bulk_rows(30, module="contabilidad", state=TaskState.SUCCESS)
    elsewhere = make_execution(module="nomina", state=TaskState.PENDING)
    client = client_for(staff)
    counts, fields, page = confirmation_page(
        client, action="cancel", scope="filter", module="contabilidad"
    )
    # The count shown before confirming is every matching row.
    assert (counts["total"], counts["affected"]) == (MANY + 30, MANY)
    assert "10050" in page.replace("\xa0", "").replace(".", "").replace(",", "")
    assert 'class="bulk-more"' not in page
    later = make_execution(module="contabilidad", state=TaskState.PENDING)  # after confirming
    settings.TASKBOARD_BULK_BATCH_SIZE = 500
    with CaptureQueriesContext(connection) as queries:
        result = run(client, fields)
    assert result == {"done": MANY, "skipped": 30, "unsent": 0}
    asked = TaskExecution.objects.filter(cancel_requested_by=staff)
    assert asked.count() == MANY
    assert set(asked.filter(pk__in=[r.pk for r in oldest]).values_list("pk", flat=True)) == {
        r.pk for r in oldest
    }
    assert not asked.filter(pk__in=[later.pk, elsewhere.pk, *(r.pk for r in finished)]).exists()
    # Batches: each read of rows is a keyset page of at most 500 (memory holds one batch).
    reads = [q["sql"] for q in queries.captured_queries if '"task_id"' in q["sql"]]
    reads = [sql for sql in reads if sql.lstrip().upper().startswith("SELECT") and "LIMIT" in sql]
    assert len(reads) >= MANY // 500
    assert all("LIMIT 500" in sql for sql in reads), reads[:3]


def test_delete_all_matching_reaches_every_finished_row(staff, settings):
    _bulk_rows(MANY, module="facturacion", state=TaskState.FAILURE)
    running = make_execution(module="facturacion", state=TaskState.STARTED)
    client = client_for(staff)
    counts, fields, _ = confirmation_page(
        client, action="delete", scope="filter", module="facturacion"
    )
    assert (counts["total"], counts["affected"]) == (MANY + 1, MANY)
    settings.TASKBOARD_BULK_BATCH_SIZE = 1000
    assert run(client, fields) == {"done": MANY, "skipped": 1, "unsent": 0}
    assert list(TaskExecution.objects.filter(module="facturacion")) == [running]


def test_retry_all_matching_walks_every_batch(staff, settings):
    call = {"args": [2, 3], "kwargs": {}}
    failed = [
        make_execution(
            task_name="tests.worker_tasks.add", module="calc", state=TaskState.FAILURE, call=call
        )
        for _ in range(11)
    ]
    client = client_for(staff)
    counts, fields, _ = confirmation_page(client, action="retry", scope="filter", module="calc")
    assert (counts["total"], counts["affected"]) == (11, 11)
    settings.TASKBOARD_BULK_BATCH_SIZE = 3  # four batches
    result = run(client, fields)
    assert result["done"] == 11 and result["unsent"] == 0
    retried = TaskExecution.objects.filter(retry_of__in=failed)
    assert set(retried.values_list("retry_of_id", flat=True)) == {e.pk for e in failed}
