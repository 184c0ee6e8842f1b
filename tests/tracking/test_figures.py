"""The write buffer's figures (pending writes, the age of the oldest) and how a pool process
hands them to its worker's main process: real forked processes sharing the slots, one of
them killed with a write still in its buffer."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from taskboard.models import TaskState
from taskboard.tracking import figures as figures_module
from taskboard.tracking.figures import PoolFigures, worker_figures
from taskboard.tracking.recorder import Write, WriteBuffer, buffer
from tests.processes import wait_until

LATER = 600.0  # a delay no test waits for: the write stays in the buffer


def queued(task_id: str) -> Write:
    return Write(("task_id", task_id), TaskState.STARTED, {"worker": "w1@host"})


@pytest.fixture
def fresh() -> Iterator[WriteBuffer]:
    made = WriteBuffer()
    yield made
    made._take_all()  # nothing is left for stop() to write
    made._settled()
    made.stop(timeout=1.0)


def test_a_buffered_write_not_yet_flushed_shows_its_age(fresh):
    assert fresh.figures()["pending"] == 0 and fresh.figures()["oldest_since"] is None
    before = time.monotonic()
    fresh.put(queued("a"), delay=LATER)
    fresh.insert({"task_id": "b"}, delay=LATER)
    after = time.monotonic()
    figures = fresh.figures()
    assert figures["pending"] == 2
    assert before <= figures["oldest_since"] <= after
    # Later writes of the same task merge into it: it stays as old as the first.
    wait_until(lambda: time.monotonic() - after > 0.05, timeout=5, interval=0.01)
    fresh.put(queued("a"), delay=LATER)
    assert fresh.figures()["oldest_since"] <= after
    # Taken in a batch, it is still pending (and as old) until the batch is settled.
    batch = fresh._take_all()
    assert len(batch.writes) == 1 and len(batch.inserts) == 1
    assert fresh.figures()["pending"] == 2 and fresh.figures()["oldest_since"] <= after
    fresh._settled()
    assert fresh.figures()["pending"] == 0 and fresh.figures()["oldest_since"] is None


def test_the_heartbeat_figures_show_a_lag_while_a_write_waits_in_this_process():
    lookup = ("task_id", "figures-heartbeat")
    try:
        buffer.put(Write(lookup, TaskState.STARTED, {}), delay=LATER)
        wait_until(lambda: worker_figures()["oldest_pending_seconds"] > 0, timeout=5)
        figures = worker_figures()
        assert figures["pending"] >= 1 and figures["processes"] == 1  # no pool here
        assert set(figures) >= {"written", "dropped", "spilled", "retried", "database_away"}
    finally:
        buffer.take(lookup)
    wait_until(lambda: worker_figures()["oldest_pending_seconds"] == 0, timeout=5)


def forked_pool_process(slots: PoolFigures, index: int, *, write: bool) -> int:
    """A child that takes slot `index` (as a pool process does at worker_process_init),
    queues one write that is not due for minutes if asked, and waits to be killed."""
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: never returns into pytest
        slots.claim(index)
        if write:
            buffer.put(queued("in-a-pool-process"), delay=LATER)
        signal.pause()
    finally:
        os._exit(0)


def killed(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_a_pool_process_publishes_its_figures_and_a_killed_ones_writes_count_as_dropped(
    monkeypatch,
):
    slots = PoolFigures()
    slots.open()
    monkeypatch.setattr(figures_module, "pool_figures", slots)
    first = forked_pool_process(slots, 3, write=True)
    try:

        def published() -> dict[str, Any] | None:
            found = [f for f in slots.pool() if f["pid"] == first]
            return found[0] if found and found[0]["pending"] == 1 else None

        figures = wait_until(published, timeout=10)
        assert figures["oldest_since"] is not None and figures["dropped"] == 0
        # The main process's heartbeat adds it to its own, and shows its age.
        wait_until(lambda: worker_figures()["oldest_pending_seconds"] > 0, timeout=5)
        assert worker_figures()["processes"] == 2 and worker_figures()["pending"] >= 1
    finally:
        killed(first)
    # Killed with its write in memory: that write is lost, and counted so.
    (gone,) = slots.pool()
    assert (gone["pending"], gone["oldest_since"], gone["dropped"]) == (0, None, 1)
    assert not gone["alive"] and worker_figures()["processes"] == 1
    assert worker_figures()["dropped"] >= 1  # the heartbeat keeps counting it
    # Its replacement takes the same index and carries the counters on.
    second = forked_pool_process(slots, 3, write=False)
    try:
        wait_until(lambda: [f["pid"] for f in slots.pool()] == [second], timeout=10)
        (replacement,) = slots.pool()
        assert (replacement["pending"], replacement["dropped"]) == (0, 1)
    finally:
        killed(second)
    (last,) = slots.pool()
    assert last["dropped"] == 1  # it held nothing: nothing more lost
