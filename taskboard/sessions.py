"""Sessions on the shared cache, backed by the database (SESSION_ENGINE = "taskboard.sessions").

An open dashboard polls every 5 s; with database sessions each poll reads its session row
before anything else. Here a session is read from the shared cache (Redis) and only a miss
reads the database, so an idle poll makes one query (its user) instead of two.

Django's cached_db store would turn a cache outage into errors (a miss's refill, `exists`
and logout all raise when Redis is away). This one falls back to the database alone while
the cache fails, and skips the cache for SKIP_AFTER_FAILURE_SECONDS after a failure, so a
frozen Redis does not cost every request its socket timeout. Cached copies live at most
CACHE_SECONDS: a session ended while the cache was unreachable (a logout, a key rotated at
login) cannot outlive that in a cache that kept its data through the outage.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends import cached_db
from django.core.cache import BaseCache, caches

from taskboard.tracking.skipwindow import SkipWindow

logger = logging.getLogger(__name__)

CACHE_SECONDS = 300
SKIP_AFTER_FAILURE_SECONDS = 5.0

cache_window = SkipWindow(
    SKIP_AFTER_FAILURE_SECONDS,
    "taskboard: sessions fall back to the database (cache %s failed)",
    logger=logger,
)


class SessionStore(cached_db.SessionStore):
    """cached_db that never fails because the cache does (see the module's docstring)."""

    @property
    def _shared(self) -> BaseCache:
        return caches[settings.SESSION_CACHE_ALIAS]

    def _cache_seconds(self, expiry: Any = None) -> int:
        age = self.get_expiry_age(expiry=expiry) if expiry is not None else self.get_expiry_age()
        return max(0, min(int(age), CACHE_SECONDS))

    def load(self) -> dict[str, Any]:
        data = None
        if not cache_window.skipping():
            try:
                data = self._shared.get(self.cache_key)
            except Exception:
                cache_window.failed("read")
        if data is not None:
            return dict(data)
        stored = self._get_session_from_db()  # type: ignore[attr-defined]  # (not in the stubs)
        if stored is None:
            return {}
        data = self.decode(stored.session_data)
        self._cache_set(data, self._cache_seconds(stored.expire_date))
        return dict(data)

    def exists(self, session_key: str) -> bool:
        if session_key and not cache_window.skipping():
            try:
                if (self.cache_key_prefix + session_key) in self._shared:
                    return True
            except Exception:
                cache_window.failed("read")
        return bool(super(cached_db.SessionStore, self).exists(session_key))

    def save(self, must_create: bool = False) -> None:
        super(cached_db.SessionStore, self).save(must_create)
        self._cache_set(dict(self.items()), self._cache_seconds())

    def delete(self, session_key: str | None = None) -> None:
        super(cached_db.SessionStore, self).delete(session_key)
        key = session_key or self.session_key
        if key is None:
            return
        try:
            self._shared.delete(self.cache_key_prefix + key)
        except Exception:
            cache_window.failed("delete")  # the copy expires within CACHE_SECONDS

    def _cache_set(self, data: Any, seconds: int) -> None:
        if cache_window.skipping() or seconds <= 0:
            return
        try:
            self._shared.set(self.cache_key, data, seconds)
        except Exception:
            cache_window.failed("write")
