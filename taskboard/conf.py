"""taskboard's settings, each with its default, read on access so override_settings works."""

from __future__ import annotations

import re
from typing import Any, Literal, cast

from django.conf import settings
from django.core.signals import setting_changed

DEFAULT_REDACT_PATTERN = (
    r"pass(word|wd|phrase)?|secret|token|api[-_]?key|auth|credential|private[-_]?key|"
    r"cookie|session|signature|iban|card[-_]?number|cvv|pin$"
)


class Settings:
    """Read on access, remembered until a setting changes (override_settings included):
    tracking reads these on every task."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def _get(self, name: str, default: Any) -> Any:
        try:
            return self._cache[name]
        except KeyError:
            value = self._cache[name] = getattr(settings, name, default)
            return value

    @property
    def ENABLED(self) -> bool:
        """Master switch: when off, no task is tracked (the benchmark's baseline)."""
        return bool(self._get("TASKBOARD_ENABLED", True))

    @property
    def TRACK(self) -> Literal["all", "decorated"]:
        """ "all": every Celery task; "decorated": only tasks under @track_task."""
        return cast(Literal["all", "decorated"], self._get("TASKBOARD_TRACK", "all"))

    @property
    def EXCLUDE(self) -> tuple[str, ...]:
        """fnmatch patterns of task names never tracked (Celery's and taskboard's own)."""
        return tuple(self._get("TASKBOARD_EXCLUDE", ("celery.*", "taskboard.*")))

    @property
    def REDACT_PATTERN(self) -> str:
        """Keys (and parameter names) matching this case-insensitive regex are redacted."""
        return str(self._get("TASKBOARD_REDACT_PATTERN", DEFAULT_REDACT_PATTERN))

    @property
    def redact_regex(self) -> re.Pattern[str]:
        return _compile(self.REDACT_PATTERN)

    @property
    def SUMMARY_MAX_CHARS(self) -> int:
        """Stored args, kwargs and result summaries are cut to this many characters."""
        return int(self._get("TASKBOARD_SUMMARY_MAX_CHARS", 2000))

    @property
    def TRACEBACK_MAX_CHARS(self) -> int:
        return int(self._get("TASKBOARD_TRACEBACK_MAX_CHARS", 20000))

    @property
    def PROGRESS_WRITES_PER_SECOND(self) -> float:
        """At most this many progress writes per second per task; the last value lands."""
        return float(self._get("TASKBOARD_PROGRESS_WRITES_PER_SECOND", 2.0))

    @property
    def WRITE_DELAY(self) -> float:
        """Seconds a worker (or a script) may hold a tracking write to batch it with others:
        final states land within about this long. Requests publish synchronously."""
        return float(self._get("TASKBOARD_WRITE_DELAY", 0.1))

    @property
    def STARTED_WRITE_DELAY(self) -> float:
        """Seconds a task runs before its STARTED row is written. A shorter task is
        recorded with one write (its final state), which keeps tracking cheap."""
        return float(self._get("TASKBOARD_STARTED_WRITE_DELAY", 0.25))

    # --- Workers -------------------------------------------------------------------------

    @property
    def WORKER_SOURCES(self) -> tuple[str, ...]:
        """Where the worker panel reads workers from, tried in order until one answers:
        "flower" (skipped unless FLOWER_URL is set), "heartbeats", "inspect"."""
        return tuple(self._get("TASKBOARD_WORKER_SOURCES", ("flower", "heartbeats", "inspect")))

    @property
    def WORKERS_CACHE_SECONDS(self) -> float:
        """Workers are fetched once per this many seconds for every viewer (the poll)."""
        return float(self._get("TASKBOARD_WORKERS_CACHE_SECONDS", 5.0))

    @property
    def CACHE_ALIAS(self) -> str:
        """The cache shared by every web process (single-flight fetches, cached workers)."""
        return str(self._get("TASKBOARD_CACHE_ALIAS", "default"))

    @property
    def HEARTBEAT_INTERVAL(self) -> float:
        """A worker writes its heartbeat row at most once per this many seconds."""
        return float(self._get("TASKBOARD_HEARTBEAT_INTERVAL", 2.0))

    @property
    def WORKER_OFFLINE_AFTER(self) -> float:
        """A worker whose last heartbeat is older than this many seconds is offline."""
        return float(self._get("TASKBOARD_WORKER_OFFLINE_AFTER", 10.0))

    @property
    def INSPECT_TIMEOUT(self) -> float:
        """Seconds Celery's inspect() waits for workers to answer."""
        return float(self._get("TASKBOARD_INSPECT_TIMEOUT", 1.0))

    @property
    def RETENTION_DAYS(self) -> float:
        """Finished executions older than this many days are pruned (0: kept forever)."""
        return float(self._get("TASKBOARD_RETENTION_DAYS", 90))

    @property
    def FLOWER_URL(self) -> str:
        return str(self._get("FLOWER_URL", "") or "").rstrip("/")

    @property
    def FLOWER_USER(self) -> str:
        return str(self._get("FLOWER_USER", "") or "")

    @property
    def FLOWER_PASSWORD(self) -> str:
        return str(self._get("FLOWER_PASSWORD", "") or "")

    @property
    def FLOWER_TIMEOUT(self) -> tuple[float, float]:
        """(connect, read) seconds for every call to Flower. Read allows for Flower's own
        inspect broadcast (its --inspect_timeout, 1 s by default)."""
        connect, read = self._get("TASKBOARD_FLOWER_TIMEOUT", (1.0, 3.0))
        return float(connect), float(read)

    @property
    def REVOKE_VIA_FLOWER(self) -> bool:
        """Cancel and terminate through Flower's revoke (when FLOWER_URL is set) instead of
        Celery's broadcast; a Flower that fails falls back to the broadcast."""
        return bool(self._get("TASKBOARD_REVOKE_VIA_FLOWER", False))

    @property
    def SITE_URL(self) -> str:
        """Scheme and host the links in notification e-mails start with, e.g.
        "https://sgm.example.com" (empty: the e-mail carries the path alone)."""
        return str(self._get("TASKBOARD_SITE_URL", "") or "").rstrip("/")

    @property
    def CALL_MAX_CHARS(self) -> int:
        """A task's call (args and kwargs, as JSON) is kept for retry when it is at most this
        long; a longer one is not kept and the task cannot be retried (0: never kept)."""
        return int(self._get("TASKBOARD_CALL_MAX_CHARS", 10000))

    # --- Bulk actions and estimates ------------------------------------------------------

    @property
    def BULK_BATCH_SIZE(self) -> int:
        """Bulk actions work through this many executions per transaction (and per revoke
        broadcast)."""
        return max(1, int(self._get("TASKBOARD_BULK_BATCH_SIZE", 200)))

    @property
    def BULK_MAX_ROWS(self) -> int:
        """One bulk action handles at most this many executions (the newest); the
        confirmation says so when more match, and running it again handles the rest."""
        return max(1, int(self._get("TASKBOARD_BULK_MAX_ROWS", 10000)))

    @property
    def ETA_MIN_PROGRESS(self) -> int:
        """A running task shows the time it has left once its progress reaches this many
        percent (below it, the rate says too little)."""
        return max(1, int(self._get("TASKBOARD_ETA_MIN_PROGRESS", 5)))

    @property
    def TYPICAL_DURATION_RUNS(self) -> int:
        """A queued task shows the median duration of this many latest successful runs of
        its task."""
        return max(1, int(self._get("TASKBOARD_TYPICAL_DURATION_RUNS", 100)))


_compiled: dict[str, re.Pattern[str]] = {}


def _compile(pattern: str) -> re.Pattern[str]:
    if pattern not in _compiled:
        _compiled[pattern] = re.compile(pattern, re.IGNORECASE)
    return _compiled[pattern]


conf = Settings()


def _forget(**kwargs: Any) -> None:
    conf._cache.clear()


setting_changed.connect(_forget, dispatch_uid="taskboard.conf")
