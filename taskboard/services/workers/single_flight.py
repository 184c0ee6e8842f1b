"""One fetch per interval for every web process: a value cached in the shared cache, and
a lock (cache.add) so that only one process refreshes it while the others keep showing the
previous value, or wait a bounded while for the first one.

A viewer that finds another fetching never starts a fetch of its own: it gets the previous
value, or, with nothing to show yet, waits at most `wait` seconds and then `unavailable()`
(a "not available yet" answer). Only when the lock is free (its fetcher finished or died
and the lock expired) may a waiting viewer become the fetcher.

When the shared cache itself fails (Redis stopped or frozen: every call is bounded by the
cache's socket timeouts), the same rule runs on a per-process store for a few seconds, so a
sick cache costs one bounded call now and then, never a fetch per viewer.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from django.core.cache import caches

from taskboard.conf import conf
from taskboard.tracking.skipwindow import SkipWindow

logger = logging.getLogger(__name__)

T = TypeVar("T")

WAIT_SECONDS = 2.5  # the longest a viewer waits for another's first fetch
POLL_SECONDS = 0.05
SHARED_DOWN_SECONDS = 5.0  # after a cache error, the per-process store is used this long


@dataclass(frozen=True)
class _Entry:
    stored_at: float
    value: Any = field(default=None)


class _Store(Protocol):
    def get(self, key: str) -> Any: ...
    def add(self, key: str, value: str, timeout: int) -> bool: ...
    def set(self, key: str, value: Any, timeout: int) -> None: ...
    def delete(self, key: str) -> None: ...


class _LocalStore:
    """The fallback: this process's memory, with expiries (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any:
        with self._lock:
            expires, value = self._data.get(key, (0.0, None))
            return value if expires > time.monotonic() else None

    def add(self, key: str, value: str, timeout: int) -> bool:
        with self._lock:
            expires, _ = self._data.get(key, (0.0, None))
            if expires > time.monotonic():
                return False
            self._data[key] = (time.monotonic() + timeout, value)
            return True

    def set(self, key: str, value: Any, timeout: int) -> None:
        with self._lock:
            self._data[key] = (time.monotonic() + timeout, value)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)


_local = _LocalStore()
cache_window = SkipWindow(
    SHARED_DOWN_SECONDS,
    "taskboard: the shared cache failed (%s); using this process's",
    logger=logger,
)


class _CacheDown(Exception):
    pass


class _Shared:
    """The shared cache; any error it raises becomes _CacheDown (and is remembered)."""

    def __init__(self) -> None:
        self.cache = caches[conf.CACHE_ALIAS]

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.cache, method)(*args, **kwargs)
        except Exception as exc:
            cache_window.failed(exc)
            raise _CacheDown from exc

    def get(self, key: str) -> Any:
        return self._call("get", key)

    def add(self, key: str, value: str, timeout: int) -> bool:
        return bool(self._call("add", key, value, timeout=timeout))

    def set(self, key: str, value: Any, timeout: int) -> None:
        self._call("set", key, value, timeout=timeout)

    def delete(self, key: str) -> None:
        self._call("delete", key)


def once_per(key: str, seconds: int) -> bool:
    """True for the first caller within `seconds` across every web process (a cache.add
    gate); while the shared cache is down, within this process (its memory), so the gate
    costs at most one cache timeout per SHARED_DOWN_SECONDS and still opens."""
    if not cache_window.skipping():
        try:
            return _Shared().add(key, "1", seconds)
        except _CacheDown:
            pass
    return _local.add(key, "1", seconds)


def peek(key: str) -> Any:
    """The value single_flight last stored under key, however old, or None: never a fetch,
    never a wait (a failing shared cache: this process's copy, if any)."""
    entry = None
    if not cache_window.skipping():
        with suppress(_CacheDown):
            entry = _Shared().get(key)
    if entry is None:
        entry = _local.get(key)
    return entry.value if isinstance(entry, _Entry) else None


def single_flight(
    key: str,
    fetch: Callable[[], T],
    *,
    fresh_for: float,
    budget: float,
    unavailable: Callable[[], T],
    wait: float = WAIT_SECONDS,
) -> T:
    """The cached value while fresh; else one process fetches and the others show the
    previous value, or wait at most `wait` s for the first one and then get `unavailable()`.
    `budget`: the longest one fetch may take; it bounds how long the lock is held by a
    fetcher that died."""
    if not cache_window.skipping():
        shared = _Shared()
        try:
            return _flight(shared, key, fetch, fresh_for, budget, unavailable, wait)
        except _CacheDown:
            pass
    return _flight(_local, key, fetch, fresh_for, budget, unavailable, wait)


def _flight(
    store: _Store,
    key: str,
    fetch: Callable[[], T],
    fresh_for: float,
    budget: float,
    unavailable: Callable[[], T],
    wait: float,
) -> T:
    entry = store.get(key)
    if isinstance(entry, _Entry) and time.time() - entry.stored_at < fresh_for:
        return entry.value  # type: ignore[no-any-return]
    lock = f"{key}:lock"
    give_up = time.monotonic() + wait
    while True:
        token = uuid.uuid4().hex
        if store.add(lock, token, int(budget) + 1):
            return _fetch_holding(store, key, lock, token, fetch, fresh_for)
        if isinstance(entry, _Entry):
            return entry.value  # type: ignore[no-any-return]  # stale, while another refreshes
        # Nothing to show yet: wait a bounded while for the fetcher; never fetch alongside it.
        while store.get(lock) is not None and time.monotonic() < give_up:
            time.sleep(POLL_SECONDS)
        entry = store.get(key)
        if isinstance(entry, _Entry):
            return entry.value  # type: ignore[no-any-return]
        if time.monotonic() >= give_up:
            return unavailable()


def _fetch_holding(
    store: _Store, key: str, lock: str, token: str, fetch: Callable[[], T], fresh_for: float
) -> T:
    try:
        value = fetch()
    except BaseException:
        with suppress(_CacheDown):
            if store.get(lock) == token:
                store.delete(lock)
        raise
    entry = _Entry(time.time(), value)
    keep = int(max(60, fresh_for * 12))
    try:
        store.set(key, entry, keep)
        if store.get(lock) == token:
            store.delete(lock)
    except _CacheDown:
        # The value is good: the next viewers of this process get it from memory.
        _local.set(key, entry, keep)
    return value
