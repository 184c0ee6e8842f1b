"""Database work in a background thread must not be cut in half by a fork.

A Celery worker's main process forks its pool processes (at start, and again whenever one
is replaced: a terminated task, max-tasks-per-child) while taskboard's own threads there
write heartbeats and RECEIVED states. A fork copies only the forking thread: a lock that
another thread held at that moment stays locked in the child for ever. SQLite takes a
process-wide mutex on every allocation, so a pool process forked while the heartbeat thread
was inside SQLite hangs at its first query (reproduced: 68 of 100 forks against a thread
writing in a loop). So those threads do their database work under one lock, and fork
waits for it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.RLock()


@contextmanager
def database_work() -> Iterator[None]:
    """Hold off any fork of this process while the block talks to the database."""
    with _lock:
        yield


def _release() -> None:
    _lock.release()


# Reentrant: a thread that forks from inside database_work() does not wait on itself.
# In the child only the forking thread exists, and it is the one holding the lock.
os.register_at_fork(before=_lock.acquire, after_in_parent=_release, after_in_child=_release)
