"""Deleted totals: what goes is added once, even when two deletions run at once."""

from __future__ import annotations

import threading
import uuid

from django.db import connection

from taskboard.models import DeletedExecutionTotal, TaskExecution, TaskState, duration_bucket
from taskboard.services.totals import executions_delete_counted


def finished_rows(count: int, *, state: str = TaskState.SUCCESS) -> list[int]:
    TaskExecution.objects.bulk_create(
        [
            TaskExecution(
                task_id=str(uuid.uuid4()),
                task_name="t.totals",
                module="nomina",
                state=state,
                duration=float(index % 100),
            )
            for index in range(count)
        ]
    )
    return list(TaskExecution.objects.filter(task_name="t.totals").values_list("pk", flat=True))


def totals() -> dict[tuple[str, bool, int], tuple[int, float]]:
    return {
        (row.state, row.lost, row.bucket): (row.executions, row.duration_sum)
        for row in DeletedExecutionTotal.objects.filter(task_name="t.totals")
    }


def test_unfinished_rows_stay_and_add_nothing(db):
    running = TaskExecution.objects.create(task_id="r1", task_name="t.totals", state="STARTED")
    assert executions_delete_counted(pks=[running.pk]) == 0
    assert TaskExecution.objects.filter(pk=running.pk).exists() and not totals()


def test_buckets_follow_prometheus_le():
    assert duration_bucket(None) == -1
    assert duration_bucket(0.2) == 0 and duration_bucket(1.0) == 0  # le is "at most"
    assert duration_bucket(1.01) == 1 and duration_bucket(14400.0) == 11
    assert duration_bucket(14400.5) == 12  # past the last bound: +Inf only


def test_two_deletions_at_once_add_every_row_once(transactional_db):
    pks = finished_rows(600)
    expected: dict[tuple[str, bool, int], tuple[int, float]] = {}
    for duration in TaskExecution.objects.filter(pk__in=pks).values_list("duration", flat=True):
        key = (str(TaskState.SUCCESS), False, duration_bucket(duration))
        count, total = expected.get(key, (0, 0.0))
        expected[key] = (count + 1, total + (duration or 0.0))
    deleted: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def delete(share: list[int]) -> None:
        try:
            start.wait()
            for index in range(0, len(share), 50):
                deleted.append(executions_delete_counted(pks=share[index : index + 50]))
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    # Two overlapping halves (a prune and a bulk delete of some of the same rows), and a
    # third thread with all of them.
    shares = [pks[:400], pks[200:], pks[::-1]]
    threads = [threading.Thread(target=delete, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sum(deleted) == 600 and not TaskExecution.objects.filter(pk__in=pks).exists()
    got = totals()
    assert set(got) == set(expected)
    for key, (count, total) in expected.items():
        assert got[key][0] == count
        assert abs(got[key][1] - total) < 1e-6
