"""Deleting finished executions without taking them out of the metrics' counters.

A counter of /metrics is the live rows' tally plus DeletedExecutionTotal. Every path that
deletes executions (retention, bulk delete, the admin) goes through executions_delete_counted,
which adds the rows' tally to those totals in the transaction that deletes them: a scrape
sees the rows or their totals, never both, never neither.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from django.db import connection, transaction

from taskboard.models import (
    TERMINAL_STATES,
    DeletedExecutionTotal,
    TaskExecution,
    duration_bucket,
)

# (module, task_name, state, lost, bucket)
TallyKey = tuple[str, str, str, bool, int]


def executions_delete_counted(*, pks: Iterable[int]) -> int:
    """Delete the finished executions among pks (their notifications with them; a retry
    of one keeps its row) and add them to the deleted totals, in one transaction (or the
    caller's). Unfinished ones are left alone. Returns how many executions were deleted."""
    wanted = list(pks)
    if not wanted:
        return 0
    with transaction.atomic():
        # Locked (PostgreSQL; SQLite's write transaction excludes every other writer): what
        # is tallied is what is deleted, even if a LOST row gets its worker's word meanwhile.
        rows = list(
            TaskExecution.objects.filter(pk__in=wanted)
            .finished()
            .order_by("pk")
            .select_for_update()
            .values_list("pk", "module", "task_name", "state", "lost_at", "duration")
        )
        if not rows:
            return 0
        _, per_model = TaskExecution.objects.filter(pk__in=[row[0] for row in rows]).delete()
        totals_add(_tally(rows))
    return per_model.get(TaskExecution._meta.label, 0)


def _tally(
    rows: list[tuple[int, str, str, str, datetime | None, float | None]],
) -> dict[TallyKey, tuple[int, float]]:
    counts: Counter[TallyKey] = Counter()
    sums: dict[TallyKey, float] = {}
    for _, module, task_name, state, lost_at, duration in rows:
        if state not in TERMINAL_STATES:
            continue
        key = (module, task_name, state, lost_at is not None, duration_bucket(duration))
        counts[key] += 1
        sums[key] = sums.get(key, 0.0) + (duration or 0.0)
    return {key: (counts[key], float(sums[key])) for key in sorted(counts)}


def totals_add(tally: dict[TallyKey, tuple[int, float]]) -> None:
    """Add to the deleted totals, one statement: an upsert that adds (never sets), so
    concurrent deletions (a prune during a bulk delete) both count. Keys in order: two
    transactions lock the same rows in the same order, never deadlock."""
    if not tally:
        return
    quote = connection.ops.quote_name
    table = quote(DeletedExecutionTotal._meta.db_table)
    keys = ["module", "task_name", "state", "lost", "bucket"]
    columns = [*keys, "executions", "duration_sum"]
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    params: list[str | int | float | bool] = []
    for key, (executions, duration_sum) in sorted(tally.items()):
        params.extend([*key, executions, duration_sum])
    added = ", ".join(
        f"{quote(name)} = {table}.{quote(name)} + excluded.{quote(name)}"
        for name in ("executions", "duration_sum")
    )
    sql = (
        f"INSERT INTO {table} ({', '.join(map(quote, columns))}) "
        f"VALUES {', '.join([row] * len(tally))} "
        f"ON CONFLICT ({', '.join(map(quote, keys))}) DO UPDATE SET {added}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
