"""PostgreSQL stopped for 60 s under a stream of tasks: no tracking write is lost.

A real worker (prefork) runs on a private PostgreSQL cluster, migrated with `manage.py
migrate`; this process publishes a steady stream of tasks and tracks them like any
publisher (its own write buffer keeps the PENDING rows it could not insert). The cluster is
stopped with `pg_ctl stop -m fast` (every session cut) for the issue's 60 s, then started.
The rows are read with a direct psycopg connection to the cluster.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult

from sgm.celery import app as celery_app
from sgm.contabilidad.tasks import cerrar_periodo
from taskboard.models import TaskState
from taskboard.tracking import registry
from taskboard.tracking.recorder import buffer
from tests import worker_tasks
from tests.processes import (
    PostgresCluster,
    RedisServer,
    migrated_postgres,
    start_worker,
    wait_until,
)

OUTAGE_SECONDS = 60.0  # the figure, not scaled down
FINAL_WITHIN = 30.0  # every row final within this long of the database returning
PUBLISH_EVERY = 0.2  # seconds between two published tasks


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[PostgresCluster]:
    with migrated_postgres(tmp_path) as server:
        yield server


class Stream:
    """Publishes tasks from a thread until stopped: successes, progress, and failures."""

    def __init__(self) -> None:
        self.published: list[tuple[AsyncResult[Any], str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self.errors: list[BaseException] = []

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            try:
                if i % 5 == 4:
                    self.published.append(
                        (cerrar_periodo.delay(f"2026-{i:04d}"), TaskState.FAILURE)
                    )
                elif i % 5 == 2:
                    self.published.append(
                        (worker_tasks.progress_steps.delay(3, 0.05), TaskState.SUCCESS)
                    )
                else:
                    self.published.append((worker_tasks.add.delay(i, i), TaskState.SUCCESS))
            except BaseException as exc:  # the broker is up: publishing must never fail
                self.errors.append(exc)
            i += 1
            self._stop.wait(PUBLISH_EVERY)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def count(self) -> int:
        return len(self.published)


def final_rows(cluster: PostgresCluster) -> dict[str, tuple[str, str]]:
    with cluster.connect() as conn:
        found = conn.execute(
            "SELECT task_id, state, worker FROM taskboard_taskexecution"
        ).fetchall()
    return {task_id: (state, worker) for task_id, state, worker in found}


def test_no_tracking_write_is_lost_while_postgres_is_down(
    cluster: PostgresCluster,
    redis_server: RedisServer,
    django_db_blocker: Any,
    settings: Any,
    tmp_path: Path,
) -> None:
    # This process publishes like a web process would outside a request (buffered inserts);
    # a small bound so that its inserts also go through a spill file and its replay.
    settings.TASKBOARD_SPILL_DIR = str(tmp_path / "spill-publisher")
    settings.TASKBOARD_BUFFER_MAX_WRITES = 25
    before = buffer.counters()
    with django_db_blocker.unblock():
        buffer.stop()  # its thread lets go of the suite's database
        with cluster.as_default_database():
            worker = start_worker(
                celery_app,
                tmp=tmp_path,
                broker_url=redis_server.url,
                db_url=cluster.url,
                extra_env={"SGM_VAR_DIR": str(tmp_path / "worker-var")},
            )
            try:
                with Stream() as stream:
                    wait_until(lambda: stream.count() >= 10, timeout=30)
                    cluster.stop()
                    stopped_at = time.monotonic()
                    # As a fresh publisher would, sync its templates at its next publish: now.
                    registry._synced_templates.clear()
                    published_during = stream.count()
                    wait_until(lambda: time.monotonic() - stopped_at >= OUTAGE_SECONDS, 90, 0.5)
                    published_during = stream.count() - published_during
                    cluster.start()
                    returned = time.monotonic()
                    wait_until(lambda: stream.count() >= published_during + 25, timeout=30)
                assert not stream.errors
                expected = {result.id: state for result, state in stream.published}

                # The tasks themselves ran (their results live in Redis, not PostgreSQL).
                wait_until(lambda: all(r.ready() for r, _ in stream.published), timeout=60)

                def all_final() -> bool:
                    rows = final_rows(cluster)
                    return all(
                        rows.get(task_id, ("",))[0] == state for task_id, state in expected.items()
                    )

                try:
                    wait_until(all_final, timeout=FINAL_WITHIN, interval=0.5)
                except TimeoutError:
                    rows = final_rows(cluster)
                    wrong = {
                        task_id: (rows.get(task_id, ("missing",))[0], state)
                        for task_id, state in expected.items()
                        if rows.get(task_id, ("missing",))[0] != state
                    }
                    raise AssertionError(
                        f"{len(wrong)} of {len(expected)} tasks not recorded as they ended "
                        f"{FINAL_WITHIN:g} s after the database returned (row, expected): "
                        f"{dict(list(wrong.items())[:10])}\n{worker.log()[-3000:]}"
                    ) from None
                final_after = time.monotonic() - returned
                rows = final_rows(cluster)
                assert set(rows) == set(expected)  # one row per task published, no other
                assert {worker_name for _, worker_name in rows.values()} == {worker.name}
                print(
                    f"\n{len(expected)} tasks ({published_during} published during the "
                    f"{OUTAGE_SECONDS:g} s outage): all final {final_after:.1f} s after the "
                    f"database returned"
                )
            finally:
                worker.stop()
            log = worker.log()
            counts = buffer.counters()
            buffer.stop()

    # Nothing dropped, on either side; the outage and the return were both said.
    # (The heartbeat thread's own "could not record the heartbeat" is not a tracking write.)
    assert not re.search(r"could not record (the publication|\w+ of)", log)
    assert "the database is unreachable" in log
    assert "the database is back" in log and "dropped=0" in log
    assert counts["dropped"] == before["dropped"]
    assert counts["pending"] == 0
    assert counts["spilled"] > before["spilled"]
    assert counts["replayed"] - before["replayed"] == counts["spilled"] - before["spilled"]
    assert counts["outages"] > before["outages"]


def test_a_worker_stopped_while_postgres_is_down_spills_and_the_next_one_replays(
    cluster: PostgresCluster,
    redis_server: RedisServer,
    django_db_blocker: Any,
    settings: Any,
    tmp_path: Path,
) -> None:
    """Warm shutdown with the database away: what the worker could not write within its
    stop timeout goes to spill files in its var folder; the worker started next replays
    them once it is ready."""
    settings.TASKBOARD_SPILL_DIR = str(tmp_path / "spill-publisher")
    worker_var = tmp_path / "worker-var"
    worker_spill = worker_var / "taskboard-spill"
    env = {"SGM_VAR_DIR": str(worker_var)}
    with django_db_blocker.unblock():
        buffer.stop()
        with cluster.as_default_database():
            worker = start_worker(
                celery_app, tmp=tmp_path, broker_url=redis_server.url, db_url=cluster.url,
                extra_env=env,
            )  # fmt: skip
            try:
                cluster.stop()
                results = [worker_tasks.add.delay(i, i) for i in range(20)]
                wait_until(lambda: all(r.ready() for r in results), timeout=30)
            finally:
                worker.stop()  # SIGTERM: a warm shutdown, the database still away
            first_log = worker.log()
            spilled = sorted(worker_spill.glob("*.jsonl"))
            assert spilled, f"the stopped worker spilled nothing:\n{first_log[-3000:]}"
            records = [line for path in spilled for line in path.read_text().splitlines()]
            assert len(records) >= len(results)

            cluster.start()
            restarted = start_worker(
                celery_app, tmp=tmp_path, broker_url=redis_server.url, db_url=cluster.url,
                extra_env=env,
            )  # fmt: skip
            try:
                expected = {r.id: TaskState.SUCCESS for r in results}

                def replayed() -> bool:
                    rows = final_rows(cluster)
                    return all(rows.get(i, ("",))[0] == s for i, s in expected.items())

                try:
                    wait_until(replayed, timeout=FINAL_WITHIN, interval=0.5)
                except TimeoutError:
                    raise AssertionError(
                        f"not replayed: {final_rows(cluster)}\n{restarted.log()[-3000:]}"
                    ) from None
                wait_until(lambda: not list(worker_spill.glob("*")), timeout=10)
                rows = final_rows(cluster)
                assert {rows[i][1] for i in expected} == {worker.name}  # the first one ran them
            finally:
                restarted.stop()
                buffer.stop()
    assert not re.search(r"could not record (the publication|\w+ of)", first_log)
    assert "spilled to" in first_log
    assert "spilled tracking writes replayed" in restarted.log()
