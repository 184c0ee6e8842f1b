"""Spill files: tracking writes that could not wait in memory for the database.

While the database is away a process holds its writes in memory (recorder.WriteBuffer),
up to TASKBOARD_BUFFER_MAX_WRITES / _MAX_BYTES; past that, and at shutdown, it writes them
here: one JSON-lines file per spill (a row to insert or a write per line, in the order
they must be applied), in TASKBOARD_SPILL_DIR (default: the project's VAR_DIR/taskboard-spill).

A file is written as `<name>.part` and renamed into place complete, so a reader never sees
half of one. Replaying claims a file by renaming it (`<name>.claimed-<host>-<pid>`): of two
processes only one rename succeeds, so no file is replayed twice at once. A claimed file is
deleted only once its writes were committed, and given back (renamed again) when the
database is away; a claim whose process died (same host) is taken over. Files are replayed
when a worker is ready, on the first flush of any process, and when the database answers
again after an outage.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from celery import signals
from django.conf import settings

from taskboard.conf import conf

logger = logging.getLogger("taskboard.tracking")

SUFFIX = ".jsonl"
CLAIMED = ".claimed-"
ASIDE = ".unreadable"  # a file that could not be replayed for another reason than the DB

_host = socket.gethostname().replace("-", "_").replace(".", "_")
_sequence = 0
_lock = threading.Lock()
_claimed: set[Path] = set()


def spill_dir() -> Path:
    if conf.SPILL_DIR:
        return Path(conf.SPILL_DIR)
    var = getattr(settings, "VAR_DIR", None)
    base = Path(var) if var else Path(tempfile.gettempdir())
    return base / "taskboard-spill"


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def save(records: list[dict[str, Any]]) -> Path:
    """Write records to a new spill file (complete, then renamed into place)."""
    global _sequence
    folder = spill_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with _lock:
        _sequence += 1
        # Names sort by time: files are replayed in the order they were spilled.
        name = f"{time.time_ns():020d}-{_host}-{os.getpid()}-{_sequence}{SUFFIX}"
    path = folder / name
    part = path.with_name(name + ".part")
    with open(part, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, default=_default, separators=(",", ":")) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(part, path)
    return path


def claim_all() -> list[Path]:
    """Claim every spill file there is (and claims of dead processes), oldest first."""
    folder = spill_dir()
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    claimed = []
    for name in names:
        source = folder / name
        if name.endswith(SUFFIX):
            original = name
        elif CLAIMED in name and _claimer_is_dead(name):
            original = name.split(CLAIMED)[0]
        else:
            continue
        target = folder / f"{original}{CLAIMED}{_host}-{os.getpid()}"
        try:
            os.rename(source, target)
        except FileNotFoundError:
            continue  # another process claimed it first
        with _lock:
            _claimed.add(target)
        claimed.append(target)
    return claimed


def _claimer_is_dead(name: str) -> bool:
    host, _, pid = name.split(CLAIMED)[1].rpartition("-")
    if host != _host or not pid.isdigit():
        return False  # another machine's process: it may well be alive
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def load(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _original(path: Path) -> Path:
    return path.with_name(path.name.split(CLAIMED)[0])


def release(path: Path) -> None:
    """Give a claimed file back (the database is away: another attempt, maybe elsewhere)."""
    with _lock:
        _claimed.discard(path)
    with contextlib.suppress(FileNotFoundError):
        os.rename(path, _original(path))


def release_all() -> None:
    with _lock:
        paths = list(_claimed)
    for path in paths:
        release(path)


def done(path: Path) -> None:
    """Its writes are committed: the file goes."""
    with _lock:
        _claimed.discard(path)
    path.unlink(missing_ok=True)


def set_aside(path: Path) -> None:
    with _lock:
        _claimed.discard(path)
    os.rename(path, _original(path).with_suffix(SUFFIX + ASIDE))


@signals.worker_ready.connect(weak=False, dispatch_uid="taskboard.replay_spilled")
def replay_at_start(**_: Any) -> None:
    """A worker that starts writes what an earlier process (or itself) spilled."""
    from taskboard.tracking.recorder import buffer

    buffer.replay_soon()
