"""A batch of tracking writes lands exactly as the same writes one by one would.

On PostgreSQL the recorder writes a burst of one shape as one statement over arrays (and a
burst of new rows as one INSERT); on SQLite one statement per write. These tests hold on
both: the state rule, the extra conditions, rows created when missing, defaults.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from taskboard.models import TaskExecution, TaskState
from taskboard.tracking.recorder import Write, apply_many, insert
from tests.factories import make_execution

pytestmark = pytest.mark.django_db


def _final(task_id: str, worker: str = "w1", **fields: object) -> Write:
    now = timezone.now()
    return Write(
        ("task_id", task_id),
        TaskState.SUCCESS,
        {"finished_at": now, "worker": worker, "progress": 100, "duration": 0.5, **fields},
        conditions={"worker_if_lost": worker},
    )


def test_a_burst_of_final_writes_follows_the_rule_row_by_row():
    running = [make_execution(state=TaskState.STARTED, worker="w1") for _ in range(4)]
    finished = make_execution(state=TaskState.FAILURE, worker="w1")
    lost_here = make_execution(state=TaskState.LOST, worker="w1", lost_at=timezone.now())
    lost_elsewhere = make_execution(state=TaskState.LOST, worker="w2", lost_at=timezone.now())
    missing = str(uuid.uuid4())
    writes = [_final(e.task_id) for e in [*running, finished, lost_here, lost_elsewhere]]
    writes.append(
        Write(
            ("task_id", missing),
            TaskState.SUCCESS,
            dict(writes[0].fields),
            conditions={"worker_if_lost": "w1"},
            create=lambda: {"task_name": "bench.tasks.noop", "module": "bench"},
        )
    )

    changed = apply_many(writes)

    expected = {e.task_id for e in [*running, lost_here]} | {missing}
    assert {w.lookup[1] for w in changed} == expected
    states = dict(TaskExecution.objects.values_list("task_id", "state"))
    assert {states[t] for t in expected} == {TaskState.SUCCESS}
    assert states[finished.task_id] == TaskState.FAILURE  # terminal is final
    assert states[lost_elsewhere.task_id] == TaskState.LOST  # another worker's fact only
    created = TaskExecution.objects.get(task_id=missing)
    assert (created.module, created.progress, created.duration) == ("bench", 100, 0.5)
    lost_here.refresh_from_db()
    assert lost_here.lost_at is not None  # the inference is remembered


def test_a_burst_of_progress_fills_started_at_only_where_it_is_empty():
    started = timezone.now() - timedelta(minutes=5)
    queued = [make_execution(state=TaskState.RECEIVED) for _ in range(3)]
    running = make_execution(state=TaskState.STARTED, started_at=started)
    writes = [
        Write(("task_id", e.task_id), TaskState.PROGRESS, {"progress": 40 + i})
        for i, e in enumerate([*queued, running])
    ]

    assert len(apply_many(writes)) == 4

    rows = {e.task_id: e for e in TaskExecution.objects.all()}
    assert all(rows[e.task_id].started_at is not None for e in queued)
    assert rows[running.task_id].started_at == started
    assert [rows[e.task_id].progress for e in [*queued, running]] == [40, 41, 42, 43]


def test_a_burst_by_primary_key_and_with_retries_condition():
    rows = [make_execution(state=TaskState.STARTED, retries=2) for _ in range(3)]
    writes = [
        Write(("pk", e.pk), TaskState.RETRY, {"retries": 3}, conditions={"retries__lte": limit})
        for e, limit in zip(rows, (2, 2, 1), strict=True)
    ]

    changed = apply_many(writes)

    assert [w.lookup[1] for w in changed] == [rows[0].pk, rows[1].pk]
    states = [TaskExecution.objects.get(pk=e.pk).state for e in rows]
    assert states == [TaskState.RETRY, TaskState.RETRY, TaskState.STARTED]


def test_the_same_row_twice_in_a_batch_is_written_in_order():
    row = make_execution(state=TaskState.STARTED)
    writes = [
        Write(("task_id", row.task_id), TaskState.PROGRESS, {"progress": 10}),
        Write(("task_id", row.task_id), TaskState.PROGRESS, {"progress": 20}),
    ]

    assert len(apply_many(writes)) == 2
    row.refresh_from_db()
    assert row.progress == 20


def test_a_burst_of_new_rows_skips_existing_ones_and_fills_defaults():
    existing = make_execution(state=TaskState.SUCCESS, module="nomina")
    new_ids = [str(uuid.uuid4()) for _ in range(3)]
    rows = [
        {"task_id": task_id, "task_name": "bench.tasks.noop", "state": TaskState.PENDING}
        for task_id in new_ids
    ]
    rows[0]["module"] = "bench"  # a column only one row sets
    rows.append({"task_id": existing.task_id, "task_name": "x", "state": TaskState.PENDING})
    rows.append(dict(rows[1]))  # and a row twice

    insert(rows)

    assert TaskExecution.objects.get(task_id=existing.task_id).state == TaskState.SUCCESS
    created = {e.task_id: e for e in TaskExecution.objects.filter(task_id__in=new_ids)}
    assert [created[t].module for t in new_ids] == ["bench", "", ""]
    assert {(e.progress, e.call, e.retries, e.user_id) for e in created.values()} == {
        (0, None, 0, None)
    }
    assert all(e.created_at is not None for e in created.values())


def test_a_burst_keeps_every_value_exactly():
    call = {"args": [1, 'Año 2026 "cierre"'], "kwargs": {"nested": {"a": [1.5, None, True]}}}
    when = timezone.now() - timedelta(days=1, microseconds=7)
    new_ids = [str(uuid.uuid4()) for _ in range(2)]
    insert(
        [
            {"task_id": task_id, "task_name": "t", "state": TaskState.PENDING, "call": call,
             "created_at": when, "args_summary": "línea\n\ttab 'q' \\ back"}
            for task_id in new_ids
        ]
    )  # fmt: skip
    rows = list(TaskExecution.objects.filter(task_id__in=new_ids))
    assert [(r.call, r.created_at, r.args_summary) for r in rows] == [
        (call, when, "línea\n\ttab 'q' \\ back")
    ] * 2

    # A value JSON has no exact form for (NaN) sends the burst row by row: still written.
    writes = [_final(task_id, duration=float("nan")) for task_id in new_ids]
    assert len(apply_many(writes)) == 2
    states = TaskExecution.objects.filter(task_id__in=new_ids).values_list("state", flat=True)
    assert set(states) == {TaskState.SUCCESS}
