"""The change stamp: one value in the shared cache that changes whenever the record does, so
an open dashboard's poll can learn "nothing changed" without a query or a render.

Every writer of executions bumps it once per batch (the recorder per flushed batch, the
services per action); a poll sends back the stamp of what it shows (`X-Taskboard-Stamp`)
and, while it is the current one, gets 204 (htmx swaps nothing). The value shown also
carries a time bucket (BUCKET_SECONDS), so what a render computes from the clock (the
headline's 24-hour window, estimates) is rendered again that often — relative times are kept
true in the browser (taskboard.js) — and a change whose bump was lost (the cache away for a
moment) shows after at most one bucket: the stamp is an optimisation, never the source of
truth. Each viewer's
buckets turn at their own moment (`spread`), so a thousand open dashboards do not all
render again in the same second.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid

from django.core.cache import cache

from taskboard.tracking.skipwindow import SkipWindow

logger = logging.getLogger(__name__)

KEY = "taskboard:change-stamp"
BUCKET_SECONDS = 300
# After the cache failed, skip it this long: a frozen Redis must not cost every batch of
# the recorder (or every poll) its socket timeout.
SKIP_AFTER_FAILURE_SECONDS = 5.0
HEADER = "X-Taskboard-Stamp"

cache_window = SkipWindow(
    SKIP_AFTER_FAILURE_SECONDS,
    "taskboard: the change stamp could not be %s (cache unreachable)",
    logger=logger,
)


def stamp_bump() -> None:
    """Something shown on the dashboard changed. Never raises."""
    if cache_window.skipping():
        return
    try:
        cache.set(KEY, uuid.uuid4().hex[:12], timeout=None)
    except Exception:
        cache_window.failed("bumped")


def on_execution_saved(sender: object, **kwargs: object) -> None:
    stamp_bump()


def stamp_current(*, now: float | None = None, spread: str = "") -> str | None:
    """The stamp of what a render now shows (the record's version and the time bucket); None
    when the cache cannot say, and then no poll is answered 204. spread (a viewer's session
    key, say) shifts when that viewer's buckets turn."""
    if cache_window.skipping():
        return None
    try:
        version = cache.get(KEY)
        if version is None:  # first use, or evicted: start one (any writer may race: fine)
            version = uuid.uuid4().hex[:12]
            if not cache.add(KEY, version, timeout=None):
                version = cache.get(KEY)
    except Exception:
        cache_window.failed("read")
        return None
    if version is None:
        return None
    shift = (
        int.from_bytes(hashlib.blake2b(spread.encode(), digest_size=4).digest()) if spread else 0
    )
    bucket = int(((time.time() if now is None else now) + shift % BUCKET_SECONDS) // BUCKET_SECONDS)
    return f"{version}-{bucket}"
