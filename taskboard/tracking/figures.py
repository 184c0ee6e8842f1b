"""The write buffers' figures of every process of a worker, summed where the heartbeat beats.

Under the prefork pool most tracking writes are made by the pool processes, each through its
own WriteBuffer (a forked process starts with an empty one): STARTED, progress and the final
state of the tasks they run, and the rows of the tasks those tasks publish. The main process
makes the others: RECEIVED, REVOKED before a task ran, LOST when a pool process died. The
heartbeat beats from the main process only, so the main process maps a small block of
anonymous shared memory before the pool forks (worker_init), one slot per pool index; each
pool process publishes its buffer's figures into its slot (after every batch, and every
recorder.PUBLISH_SECONDS while writes wait) and the heartbeat adds them to its own. No
database work and no message: a few bytes written in memory.

A slot's counters add up over the pool processes that held its index (a replacement starts
from its predecessor's figures), so they only grow while the worker's main process lives.
A pool process killed with writes in its buffer (the OOM killer, SIGKILL) lost them: they
are counted as dropped (its last published pending writes, at most PUBLISH_SECONDS old).
Pool indexes past SLOTS are not counted. With the solo, threads, gevent or eventlet pools
every write is the main process's own, and there is no slot to read.
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import struct
import time
from typing import Any

from celery import signals

from taskboard.tracking.recorder import COUNTERS, buffer

logger = logging.getLogger(__name__)

SLOTS = 256
# A slot: a sequence number (odd while its process writes it), then the fields.
_SEQUENCE = struct.Struct("<q")
_FIELDS = ("pid", *COUNTERS, "pending", "database_away")
_DATA = struct.Struct("<" + "q" * len(_FIELDS) + "d")  # ... and oldest_since (NaN: none)
SLOT_SIZE = _SEQUENCE.size + _DATA.size


class PoolFigures:
    """The shared slots of one worker (None outside a worker: nothing to publish or read)."""

    def __init__(self) -> None:
        self._map: mmap.mmap | None = None
        self._slot: int | None = None  # this pool process's own
        self._base: dict[str, int] = {}

    def open(self) -> None:
        """In the worker's main process, before the pool forks: the children inherit it."""
        if self._map is None:
            self._map = mmap.mmap(-1, SLOTS * SLOT_SIZE)  # anonymous, shared with children
        self._slot = None

    def claim(self, index: int | None) -> None:
        """In a pool process that just started: take the slot of its pool index, carrying
        on from its predecessor's counters, and publish from now on."""
        if self._map is None or index is None or not 0 <= index < SLOTS:
            return
        previous = self._read(index) or {}
        self._base = {name: int(previous.get(name, 0)) for name in COUNTERS}
        if previous.get("pid") != os.getpid():
            # The predecessor is gone (the pool reuses an index only then): what it still
            # held never reached the database (0 when it stopped cleanly).
            self._base["dropped"] += int(previous.get("pending", 0))
        self._slot = index
        buffer.on_change = self.publish
        self.publish()

    def publish(self) -> None:
        """This pool process's figures, into its slot."""
        if self._map is None or self._slot is None:
            return
        figures = buffer.figures()
        oldest = figures["oldest_since"]
        values = [
            os.getpid(),
            *(self._base.get(name, 0) + int(figures[name]) for name in COUNTERS),
            int(figures["pending"]),
            int(figures["database_away"]),
            math.nan if oldest is None else float(oldest),
        ]
        offset = self._slot * SLOT_SIZE
        (sequence,) = _SEQUENCE.unpack_from(self._map, offset)
        _SEQUENCE.pack_into(self._map, offset, sequence + 1)  # odd: being written
        _DATA.pack_into(self._map, offset + _SEQUENCE.size, *values)
        _SEQUENCE.pack_into(self._map, offset, sequence + 2)

    def _read(self, index: int) -> dict[str, Any] | None:
        """A slot's figures as its process last published them (None: never used)."""
        assert self._map is not None
        offset = index * SLOT_SIZE
        for _ in range(100):  # a writer holds a slot for microseconds
            (before,) = _SEQUENCE.unpack_from(self._map, offset)
            values = _DATA.unpack_from(self._map, offset + _SEQUENCE.size)
            (after,) = _SEQUENCE.unpack_from(self._map, offset)
            if before == after and not before % 2:
                break
        else:
            return None
        if not before:
            return None
        figures: dict[str, Any] = dict(zip(_FIELDS, values[:-1], strict=True))
        figures["oldest_since"] = None if math.isnan(values[-1]) else values[-1]
        return figures

    def pool(self) -> list[dict[str, Any]]:
        """Every pool process's figures (in the main process). A process that is gone
        holds nothing pending: what it held is counted as dropped."""
        if self._map is None:
            return []
        found = []
        for index in range(SLOTS):
            figures = self._read(index)
            if figures is None:
                continue
            figures["alive"] = _alive(int(figures["pid"]))
            if not figures["alive"]:
                figures["dropped"] += int(figures["pending"])
                figures.update(pending=0, database_away=0, oldest_since=None)
            found.append(figures)
        return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now: ours is gone
        return False
    return True


def worker_figures() -> dict[str, Any]:
    """This worker's tracking figures for its heartbeat: the main process's buffer plus
    every pool process's (the sums; database_away: how many processes see it away;
    processes: the main one and the pool processes alive).
    oldest_pending_seconds is the age of the oldest write not yet in the database, on
    this machine's monotonic clock (0 when none), deliberate delays included: a write
    waits TASKBOARD_WRITE_DELAY (STARTED: TASKBOARD_STARTED_WRITE_DELAY) to be batched."""
    pool = pool_figures.pool()
    every = [buffer.figures(), *pool]
    totals: dict[str, Any] = {name: sum(int(f[name]) for f in every) for name in COUNTERS}
    totals["pending"] = sum(int(f["pending"]) for f in every)
    totals["database_away"] = sum(int(f["database_away"]) for f in every)
    sinces = [f["oldest_since"] for f in every if f["oldest_since"] is not None]
    oldest = max(time.monotonic() - min(sinces), 0.0) if sinces else 0.0
    totals["oldest_pending_seconds"] = round(oldest, 3)
    totals["processes"] = 1 + sum(1 for f in pool if f["alive"])  # (the gone: counters only)
    return totals


pool_figures = PoolFigures()


@signals.worker_init.connect(weak=False, dispatch_uid="taskboard.figures_open")
def on_worker_init(**_: Any) -> None:
    try:
        pool_figures.open()
    except Exception:  # tracking never stops a worker: the pool's figures go uncounted
        logger.exception("taskboard: no shared memory for the pool's tracking figures")


@signals.worker_process_init.connect(weak=False, dispatch_uid="taskboard.figures_claim")
def on_worker_process_init(**_: Any) -> None:
    try:
        from billiard.process import current_process

        pool_figures.claim(getattr(current_process(), "index", None))
    except Exception:
        logger.exception("taskboard: this pool process's tracking figures go uncounted")
