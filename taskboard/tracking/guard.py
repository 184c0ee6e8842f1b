"""Tracking must never break or slow the user's task: an error in it is logged, not raised."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("taskboard.tracking")


@contextmanager
def never_raise(where: str) -> Iterator[None]:
    try:
        yield
    except Exception:
        logger.exception("taskboard: tracking failed in %s (the task itself is unaffected)", where)
