"""The write buffer while the database is away: a private PostgreSQL cluster, really stopped
(pg_ctl stop -m fast) and started again, under a WriteBuffer of this process.

Rows are read back with a direct psycopg connection to the cluster (not through Django).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from taskboard.models import TaskState
from taskboard.tracking import spill
from taskboard.tracking.recorder import Write, WriteBuffer
from tests.processes import PostgresCluster, migrated_postgres, wait_until

STARTED_AT = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    with migrated_postgres(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture
def database(cluster: PostgresCluster, django_db_blocker: Any, settings: Any, tmp_path: Path):
    """The cluster, up and empty, as this process's default database; spill files in tmp."""
    settings.TASKBOARD_SPILL_DIR = str(tmp_path / "spill")
    settings.TASKBOARD_BUFFER_RETRY_SECONDS = (0.2, 1.0)
    with cluster.connect() as conn:
        conn.execute("TRUNCATE taskboard_taskexecution CASCADE")
    with django_db_blocker.unblock(), cluster.as_default_database():
        yield cluster
    if not (cluster.data_dir / "postmaster.pid").exists():
        cluster.start()  # a failed test leaves the next one a running server


@pytest.fixture
def buffers() -> Iterator[list[WriteBuffer]]:
    made: list[WriteBuffer] = []
    yield made
    for made_buffer in made:
        made_buffer.stop(timeout=1.0)


def new_buffer(buffers: list[WriteBuffer]) -> WriteBuffer:
    made = WriteBuffer()
    buffers.append(made)
    return made


def published(task_id: str) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "state": TaskState.PENDING,
        "task_name": "tests.outage",
        "module": "tests",
        "created_at": STARTED_AT,
    }


def started(task_id: str) -> Write:
    return Write(
        ("task_id", task_id),
        TaskState.STARTED,
        {"started_at": STARTED_AT, "worker": "w1@host", "queue": "celery"},
        create=lambda: {"task_name": "tests.outage", "module": "tests"},
    )


def succeeded(task_id: str) -> Write:
    return Write(
        ("task_id", task_id),
        TaskState.SUCCESS,
        {"finished_at": STARTED_AT, "progress": 100, "result_summary": "42", "duration": 1.5},
        create=lambda: {"task_name": "tests.outage", "module": "tests"},
    )


def rows(cluster: PostgresCluster) -> dict[str, tuple[Any, ...]]:
    with cluster.connect() as conn:
        found = conn.execute(
            "SELECT task_id, state, worker, started_at, progress, task_name "
            "FROM taskboard_taskexecution"
        ).fetchall()
    return {row[0]: row[1:] for row in found}


def states(cluster: PostgresCluster) -> dict[str, str]:
    return {task_id: row[0] for task_id, row in rows(cluster).items()}


def spill_files(settings: Any) -> list[Path]:
    folder = Path(settings.TASKBOARD_SPILL_DIR)
    return sorted(folder.iterdir()) if folder.exists() else []


def test_nothing_is_dropped_while_the_database_is_away(database, buffers, caplog, settings):
    caplog.set_level(logging.INFO, logger="taskboard.tracking")
    held = new_buffer(buffers)
    published_ids = [f"pub-{i}" for i in range(10)]  # a PENDING row first, then its writes
    worker_ids = [f"run-{i}" for i in range(10)]  # the worker's writes alone (create=)
    database.stop()
    try:
        for task_id in published_ids:
            held.insert(published(task_id), delay=0)
        for task_id in published_ids + worker_ids:
            held.put(started(task_id))
            held.put(succeeded(task_id))  # merged with STARTED while held: one write
        # Two attempts failed at least (every held write counts once per attempt).
        wait_until(lambda: held.counters()["retried"] >= 2 * 30, timeout=15)
        counts = held.counters()
        assert counts["pending"] == 30  # 10 rows + 20 merged writes, all kept
        assert counts["database_away"] == 1
        assert counts["dropped"] == counts["spilled"] == 0
        assert "the database is unreachable" in caplog.text
    finally:
        database.start()

    wait_until(lambda: len(states(database)) == 20, timeout=15)
    wait_until(lambda: held.counters()["pending"] == 0, timeout=15)
    found = rows(database)
    assert {task_id: row[0] for task_id, row in found.items()} == dict.fromkeys(
        published_ids + worker_ids, TaskState.SUCCESS
    )
    # The merged write kept STARTED's fields; the published rows kept their identity.
    assert all(
        row[1] == "w1@host" and row[2] == STARTED_AT and row[3] == 100 for row in found.values()
    )
    assert {found[task_id][4] for task_id in published_ids} == {"tests.outage"}
    counts = held.counters()
    assert (counts["pending"], counts["dropped"], counts["database_away"]) == (0, 0, 0)
    assert counts["outages"] == 1
    back = [r.getMessage() for r in caplog.records if "the database is back" in r.getMessage()]
    assert len(back) == 1 and "dropped=0" in back[0] and "retried=" in back[0]


def test_past_the_bound_writes_spill_to_a_file_then_are_replayed(database, buffers, settings):
    settings.TASKBOARD_BUFFER_MAX_WRITES = 10
    held = new_buffer(buffers)
    ids = [f"spill-{i}" for i in range(25)]
    database.stop()
    try:
        held.put(started("first"))
        wait_until(lambda: held.counters()["database_away"], timeout=10)
        for task_id in ids:
            held.insert(published(task_id), delay=0)
            held.put(succeeded(task_id))
        wait_until(lambda: held.counters()["spilled"] >= 40, timeout=10)
        counts = held.counters()
        assert counts["pending"] < 10 + 2  # memory stays bounded (a put may race a spill)
        assert counts["spilled"] + counts["pending"] == 51
        files = spill_files(settings)
        assert files and all(path.name.endswith(".jsonl") for path in files)
        records = [json.loads(line) for path in files for line in path.read_text().splitlines()]
        assert len(records) == counts["spilled"]
        writes = [record["write"] for record in records if "write" in record]
        assert writes and all(
            w["create"] == {"task_name": "tests.outage", "module": "tests"} for w in writes
        )
        assert {w["state"] for w in writes} <= {TaskState.SUCCESS, TaskState.STARTED}
    finally:
        database.start()

    wait_until(lambda: len(states(database)) == 26 and held.counters()["pending"] == 0, timeout=15)
    assert set(states(database).values()) == {TaskState.SUCCESS, TaskState.STARTED}
    assert states(database)["first"] == TaskState.STARTED
    assert spill_files(settings) == []  # deleted once written
    counts = held.counters()
    assert counts["replayed"] == counts["spilled"] and counts["dropped"] == 0


def test_the_write_lag_grows_while_the_database_is_away_spilled_writes_included(
    database, buffers, settings
):
    """The figures a heartbeat reports: every write not yet in the database stays pending,
    in memory or spilled, aged from the first one queued, until the database takes them."""
    settings.TASKBOARD_BUFFER_MAX_WRITES = 5
    held = new_buffer(buffers)
    ids = [f"lag-{i}" for i in range(12)]
    database.stop()
    try:
        queued_from = time.monotonic()
        held.put(started("first"))
        queued_by = time.monotonic()
        wait_until(lambda: held.counters()["database_away"], timeout=10)
        for task_id in ids:
            held.put(succeeded(task_id))
        wait_until(lambda: held.counters()["spilled"] >= 5, timeout=10)
        figures = held.figures()
        assert figures["pending"] == 1 + len(ids)  # memory and spill file: none in the table
        assert figures["spilled"] >= 5 and figures["database_away"] == 1
        assert queued_from <= figures["oldest_since"] <= queued_by  # "first" is spilled
        wait_until(lambda: time.monotonic() - queued_by > 0.5, timeout=5)
        assert time.monotonic() - held.figures()["oldest_since"] > 0.5  # the lag grows
    finally:
        database.start()

    wait_until(lambda: held.figures()["pending"] == 0, timeout=15)
    assert len(states(database)) == 1 + len(ids)
    figures = held.figures()
    assert figures["oldest_since"] is None and figures["dropped"] == 0
    assert figures["written"] + figures["replayed"] == 1 + len(ids)


def test_stop_spills_what_it_cannot_write_and_the_next_process_replays_it(
    database, buffers, settings
):
    stopping = new_buffer(buffers)
    ids = [f"stop-{i}" for i in range(5)]
    database.stop()
    try:
        for task_id in ids:
            stopping.insert(published(task_id), delay=0)
            stopping.put(succeeded(task_id))
        stopping.stop(timeout=1.0)
        counts = stopping.counters()
        assert (counts["pending"], counts["spilled"], counts["dropped"]) == (0, 10, 0)
        assert len(spill_files(settings)) == 1
    finally:
        database.start()

    # Another process (a fresh buffer) replays it on its first flush.
    starting = new_buffer(buffers)
    starting.flush()
    assert states(database) == dict.fromkeys(ids, TaskState.SUCCESS)
    assert spill_files(settings) == []
    assert starting.counters()["replayed"] == 10


def test_a_write_no_longer_needed_is_not_spilled(database, buffers, settings):
    held = new_buffer(buffers)
    database.stop()
    try:
        held.put(Write(("task_id", "gone"), TaskState.RECEIVED, {}, still_needed=lambda: False))
        held.put(succeeded("kept"))
        held.stop(timeout=0.5)
    finally:
        database.start()
    (path,) = spill_files(settings)
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert record["write"]["lookup"] == ["task_id", "kept"]


def test_a_write_the_database_refuses_is_dropped_and_counted(database, buffers):
    """Not an outage: the database answers and rejects one write; the others land."""
    held = new_buffer(buffers)
    bad = succeeded("too-long")
    bad.fields["worker"] = "w" * 300  # the column holds 255
    held.put(bad)
    held.put(succeeded("fine"))
    held.flush()
    assert states(database) == {"fine": TaskState.SUCCESS}
    counts = held.counters()
    assert (counts["dropped"], counts["database_away"], counts["pending"]) == (1, 0, 0)


# --- Spill files without a database -----------------------------------------------------


def test_a_write_survives_its_record(settings, tmp_path):
    write = Write(
        ("task_id", "t1"),
        TaskState.RETRY,
        {"started_at": STARTED_AT, "retries": 2, "duration": 0.5},
        conditions={"retries__lte": 1, "started_at__lt": STARTED_AT},
        from_states=frozenset({TaskState.STARTED}),
        create=lambda: {"created_at": STARTED_AT, "call": {"args": [1], "kwargs": {}}},
    )
    settings.TASKBOARD_SPILL_DIR = str(tmp_path)
    (record,) = spill.load(spill.save([{"write": write.to_record()}]))
    back = Write.from_record(record["write"])
    assert (back.lookup, back.state, back.fields, back.conditions, back.from_states) == (
        write.lookup,
        write.state,
        write.fields,
        write.conditions,
        write.from_states,
    )
    assert back.create is not None and write.create is not None
    assert back.create() == write.create()


def test_a_spill_file_is_claimed_once(settings, tmp_path):
    settings.TASKBOARD_SPILL_DIR = str(tmp_path)
    path = spill.save([{"insert": published("c1")}])
    (claimed,) = spill.claim_all()
    assert not path.exists() and claimed.exists()
    assert spill.claim_all() == []  # claimed already (by a live process: this one)
    spill.release(claimed)
    assert path.exists()
    (again,) = spill.claim_all()
    spill.done(again)
    assert list(tmp_path.iterdir()) == []


def test_the_claim_of_a_dead_process_is_taken_over(settings, tmp_path):
    settings.TASKBOARD_SPILL_DIR = str(tmp_path)
    path = spill.save([{"insert": published("c2")}])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    stale = path.with_name(f"{path.name}{spill.CLAIMED}{spill._host}-{pid}")
    os.rename(path, stale)
    (claimed,) = spill.claim_all()
    assert claimed.name == f"{path.name}{spill.CLAIMED}{spill._host}-{os.getpid()}"
    assert spill.load(claimed) == [
        {"insert": json.loads(json.dumps(published("c2"), default=spill._default))}
    ]


def test_a_row_published_in_a_request_while_the_database_is_away_is_held(database):
    """A request publishes synchronously; with the database away the buffer keeps the row."""
    from taskboard.tracking.recorder import buffer, insert

    buffer.stop()  # its thread may hold a connection to the suite's database
    database.stop()
    try:
        insert([published("from-a-request")])  # no error for the caller
        # Held: in memory, or in the batch its thread is trying (counters() sees memory only).
        assert buffer.figures()["pending"] >= 1
    finally:
        database.start()
    buffer.flush()
    assert states(database) == {"from-a-request": TaskState.PENDING}
    buffer.stop()


def test_the_wait_between_attempts_doubles_to_its_cap(settings):
    settings.TASKBOARD_BUFFER_RETRY_SECONDS = (0.5, 5.0)
    held = WriteBuffer()
    waits = []
    for _ in range(6):
        held._hold([], [], OSError("connection refused"))
        waits.append(held._backoff)
    assert waits == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    held._came_back()
    assert held.counters()["database_away"] == 0 and held._backoff == 0.0
    held.stop(timeout=0.1)
