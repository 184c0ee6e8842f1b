"""Tracking must never break or slow the user's task: an error in it is logged, not raised.

While the database is away every beat and every progress report would fail the same way:
that is said once a minute per place, as a warning without a traceback (the write buffer
keeps the writes and logs the outage itself); any other error is logged in full."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import InterfaceError, OperationalError

logger = logging.getLogger("taskboard.tracking")

AWAY_REPEAT_SECONDS = 60.0
_said_at: dict[str, float] = {}
_lock = threading.Lock()


def log_failure(message: str, *args: object) -> None:
    """Log the exception being handled: in full, or, when the database is merely
    unreachable, as one warning per message a minute."""
    exc = sys.exc_info()[1]
    if not isinstance(exc, OperationalError | InterfaceError):
        logger.exception(message, *args)
        return
    key = message % args
    now = time.monotonic()
    with _lock:
        if now - _said_at.get(key, -AWAY_REPEAT_SECONDS) < AWAY_REPEAT_SECONDS:
            return
        _said_at[key] = now
    logger.warning(f"{message} (the database is unreachable: %s)", *args, exc)


@contextmanager
def never_raise(where: str) -> Iterator[None]:
    try:
        yield
    except Exception:
        log_failure("taskboard: tracking failed in %s (the task itself is unaffected)", where)
