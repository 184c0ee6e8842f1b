"""One fetch per interval for every web process: a value cached in the shared cache, and
a lock (cache.add) so that only one process refreshes it while the others wait or keep
showing the previous value."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.core.cache import caches

from taskboard.conf import conf

T = TypeVar("T")


@dataclass(frozen=True)
class _Entry:
    stored_at: float
    value: Any = field(default=None)


def single_flight(key: str, fetch: Callable[[], T], *, fresh_for: float, budget: float) -> T:
    """The cached value while fresh; else one process fetches and the others wait for it
    (or keep showing the previous value meanwhile). `budget`: the longest one fetch may
    take; it bounds how long the lock is held by a fetcher that died."""
    cache = caches[conf.CACHE_ALIAS]
    entry = cache.get(key)
    if isinstance(entry, _Entry) and time.time() - entry.stored_at < fresh_for:
        return entry.value  # type: ignore[no-any-return]
    lock = f"{key}:lock"
    give_up = time.monotonic() + 2 * (budget + 1)
    while True:
        token = uuid.uuid4().hex
        if cache.add(lock, token, timeout=int(budget) + 1):
            try:
                value = fetch()
                cache.set(key, _Entry(time.time(), value), timeout=int(max(60, fresh_for * 12)))
                return value
            finally:
                if cache.get(lock) == token:
                    cache.delete(lock)
        if isinstance(entry, _Entry):
            return entry.value  # type: ignore[no-any-return]  # stale, while another refreshes
        # Nothing to show yet: wait for as long as the fetcher holds the lock (its expiry
        # bounds a fetcher that died), then try to become the fetcher.
        while cache.get(lock) is not None and time.monotonic() < give_up:
            time.sleep(0.05)
        entry = cache.get(key)
        if isinstance(entry, _Entry):
            return entry.value  # type: ignore[no-any-return]
        if time.monotonic() >= give_up:
            return fetch()  # the cache itself misbehaves: do not wait for ever
