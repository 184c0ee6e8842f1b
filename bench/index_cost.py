"""What each index of the list costs the tracking writes (issue 12): PostgreSQL CPU per
task with and without each index added for the list's sorts, search and module page. A
benchmark, not a test; `make bench` runs it after the tracking overhead.

Every state change of a row is an UPDATE that PostgreSQL cannot make HOT (state is
indexed), so it inserts a new entry into every index of the table: each index costs every
write. This measures that cost as the tracking writes it: a task's PENDING insert, then
its RECEIVED, STARTED and SUCCESS updates, each a batch of statements as the recorder
flushes them, on a table already holding --rows realistic rows. The figure is the CPU time
of the PostgreSQL backend (from /proc), so the client's own work does not count.

Usage, from the repository root::

    .venv/bin/python bench/index_cost.py [--rows 100000] [--tasks 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

import dashboard_scale  # type: ignore[import-not-found]  # noqa: E402  (its loader)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/taskboard_index_bench"
BATCH = 50  # tasks per flushed batch
# The indexes issue 12 added (migration 0006), as (name, definition).
LIST_INDEXES = {
    "tb_exec_label": "(display_name, task_name, created_at DESC, id DESC)",
    "tb_exec_started": "(started_at, id)",
    "tb_exec_duration": "(duration, id)",
    "tb_exec_search_trgm": (
        "USING gin ((UPPER(display_name::text)) gin_trgm_ops,"
        " (UPPER(task_name::text)) gin_trgm_ops)"
    ),
}
# The module page's covering index replaced (module, created_at DESC): its extra cost is
# that of the wider entries.
COVER = ("tb_exec_module_cover", "(module, created_at DESC, id DESC) INCLUDE (state, duration)")
PLAIN_MODULE = ("tb_exec_module_created", "(module, created_at DESC)")
# Django's index for LIKE 'prefix%' on task_id, which 0006 drops (nothing asks such lookups).
TASK_ID_LIKE = ("tb_bench_task_id_like", "(task_id varchar_pattern_ops)")
TABLE = "taskboard_taskexecution"


def backend_cpu_ms(conn: psycopg.Connection[Any]) -> float:
    """CPU time (user + system) the connection's PostgreSQL backend has used so far."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


_columns: list[str] = []
_defaults: dict[str, Any] = {}


def insert_columns(conn: psycopg.Connection[Any]) -> list[str]:
    if not _columns:
        for name, kind, nullable in dashboard_scale.columns_of(conn, TABLE):
            if name != "id":
                _columns.append(name)
                _defaults[name] = dashboard_scale.blank(kind, nullable)
    return _columns


def pending_row(task_id: str, now: datetime) -> dict[str, Any]:
    """A new row as the publisher inserts it."""
    return _defaults | {
        "task_id": task_id,
        "task_name": "sgm.nomina.tasks.consolidar",
        "display_name": "Consolidar nómina",
        "module": "nomina",
        "state": "PENDING",
        "args_summary": "[]",
        "kwargs_summary": "{'periodo': '2026-11'}",
        "queue": "celery",
        "created_at": now,
        "updated_at": now,
    }


def lifecycle(conn: psycopg.Connection[Any], tasks: int) -> None:
    """tasks short tasks written as the tracking writes them, BATCH at a time."""
    for start in range(0, tasks, BATCH):
        ids = [str(uuid.uuid4()) for _ in range(min(BATCH, tasks - start))]
        now = datetime.now(UTC)
        with conn.transaction(), conn.cursor() as cur:
            columns = insert_columns(conn)
            cur.executemany(
                f"INSERT INTO {TABLE} ({', '.join(columns)})"
                f" VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT DO NOTHING",
                [[pending_row(i, now)[c] for c in columns] for i in ids],
            )
            for sets in (
                "state = 'RECEIVED', received_at = %s, worker = 'celery@w1'",
                "state = 'STARTED', started_at = %s",
                "state = 'SUCCESS', finished_at = %s, duration = 0.01, progress = 100,"
                " result_summary = '42'",
            ):
                cur.executemany(
                    f"UPDATE {TABLE} SET {sets}, updated_at = %s WHERE task_id = %s",
                    [(now, now, i) for i in ids],
                )


def measure(conn: psycopg.Connection[Any], tasks: int, rounds: int) -> float:
    """Median PostgreSQL CPU ms per task over rounds."""
    lifecycle(conn, BATCH * 4)  # warm
    per_task = []
    for _ in range(rounds):
        began = backend_cpu_ms(conn)
        lifecycle(conn, tasks)
        per_task.append((backend_cpu_ms(conn) - began) / tasks)
    return statistics.median(per_task)


def drop(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute(f"DROP INDEX IF EXISTS {name}")


def create(conn: psycopg.Connection[Any], name: str, definition: str) -> None:
    conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {TABLE} {definition}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sgm.settings")
    print(f"index cost: {args.rows:,} rows, {args.tasks} tasks × {args.rounds} rounds", flush=True)
    dashboard_scale.recreate_database(args.database_url)
    import django

    django.setup()
    dashboard_scale.load(args.database_url, args.rows)
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        for name in LIST_INDEXES:
            drop(conn, name)
        drop(conn, COVER[0])
        create(conn, *PLAIN_MODULE)
        create(conn, *TASK_ID_LIKE)
        conn.execute(f"VACUUM ANALYZE {TABLE}")
        before = measure(conn, args.tasks, args.rounds)
        print(f"  {'before (migration 0005)':40} {before:6.3f} ms/task   1.00")
        drop(conn, TASK_ID_LIKE[0])
        base = measure(conn, args.tasks, args.rounds)
        print(
            f"  {'- task_id LIKE index (dropped by 0006)':40} {base:6.3f} ms/task"
            f"   {base / before:4.2f}"
        )
        drop(conn, PLAIN_MODULE[0])
        create(conn, *COVER)
        cover = measure(conn, args.tasks, args.rounds)
        print(
            f"  {'+ module index covering (was plain)':40} {cover:6.3f} ms/task"
            f"   {cover / base:4.2f}"
        )
        for name, definition in LIST_INDEXES.items():
            create(conn, name, definition)
            alone = measure(conn, args.tasks, args.rounds)
            drop(conn, name)
            print(f"  {'+ ' + name:40} {alone:6.3f} ms/task   {alone / cover:4.2f}", flush=True)
        for name, definition in LIST_INDEXES.items():
            create(conn, name, definition)
        every = measure(conn, args.tasks, args.rounds)
        print(f"  {'0006 as migrated, to before':40} {every:6.3f} ms/task   {every / before:4.2f}")


if __name__ == "__main__":
    main()
