"""taskboard's settings, each with its default, read on access so override_settings works."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast, overload

from django.conf import settings
from django.core.signals import setting_changed

T = TypeVar("T")

# Tried on each name as written and with accents and case folded ("Contraseña" also as
# "contrasena"). Short words that are also parts of others (pin in "spinner", card in
# "discard", auth in "author", secret in "secretaria") match only where they stand alone:
# between non-letters, or as a camelCase word ("userPin").
DEFAULT_REDACT_PATTERN = (
    r"pass(word|wd|phrase)|pass(?![a-z])|pwd|secret(?!ari)|token|api[-_]?key|"
    r"auth(?!or(?!i))|credential|private[-_]?key|cookie|session|signature|iban|cvv|cvc|"
    r"clave|contrase(n|ñ)a|contrasenya|tarjeta|credit[-_]?card|card[-_]?(num|no)|"
    r"pin[-_]?(code|number)|(?<![a-z])(card|pin|nip|otp)(?![a-z])|"
    r"(?-i:(?<=[a-z])(Card|Pin|Nip|Otp)(?![a-z]))"
)


def _flag(value: Any, default: bool) -> bool:
    return value if isinstance(value, bool) else default


def _whole(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _number(value: Any, default: float) -> float:
    return float(value) if _is_number(value) else default


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any, default: str) -> str:
    return value if isinstance(value, str) else default


def _names(value: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return default


def _pair(value: Any, default: tuple[float, float]) -> tuple[float, float]:
    if isinstance(value, list | tuple) and len(value) == 2 and all(map(_is_number, value)):
        return float(value[0]), float(value[1])
    return default


class Settings:
    """Read on access, remembered until a setting changes (override_settings included):
    tracking reads these on every task.

    Each property returns its setting as it stands, never fixed up: a value out of range
    (0 batches, a negative delay) is returned as is, and taskboard.checks reports it at
    `manage.py check`. A value of the wrong type ("abc" where a number is wanted, 1 where a
    bool is) is reported there too; the property then returns its default rather than
    raise at request time. Harmless conversions stay (an int where a float is wanted, a
    list where a tuple is)."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    @overload
    def _get(self, name: str, default: Any) -> Any: ...

    @overload
    def _get(self, name: str, default: T, convert: Callable[[Any, T], T]) -> T: ...

    def _get(
        self, name: str, default: Any, convert: Callable[[Any, Any], Any] | None = None
    ) -> Any:
        """The setting (converted by `convert`, given the raw value and the default),
        remembered until a setting changes."""
        try:
            return self._cache[name]
        except KeyError:
            value = getattr(settings, name, default)
            if convert is not None:
                value = convert(value, default)
            self._cache[name] = value
            return value

    @property
    def ENABLED(self) -> bool:
        """Master switch: when off, no task is tracked (the benchmark's baseline)."""
        return self._get("TASKBOARD_ENABLED", True, _flag)

    @property
    def TRACK(self) -> Literal["all", "decorated"]:
        """ "all": every Celery task; "decorated": only tasks under @track_task."""
        return cast(Literal["all", "decorated"], self._get("TASKBOARD_TRACK", "all"))

    @property
    def EXCLUDE(self) -> tuple[str, ...]:
        """fnmatch patterns of task names never tracked (Celery's and taskboard's own)."""
        return self._get("TASKBOARD_EXCLUDE", ("celery.*", "taskboard.*"), _names)

    @property
    def REDACT_PATTERN(self) -> str:
        """Keys (and parameter names) matching this case-insensitive regex are redacted."""
        return self._get("TASKBOARD_REDACT_PATTERN", DEFAULT_REDACT_PATTERN, _text)

    @property
    def redact_regex(self) -> re.Pattern[str]:
        """REDACT_PATTERN compiled; the default pattern when it is not a valid regex
        (taskboard.E002 reports it), so redaction never stops nor raises."""
        return _compile(self.REDACT_PATTERN)

    @property
    def REDACT_VALUES(self) -> bool:
        """Secrets recognised inside values (IBANs passing their mod-97 check, card numbers
        passing Luhn's, bearer tokens, JWTs, `clave=...`) are replaced in every stored
        argument, result, message and traceback."""
        return self._get("TASKBOARD_REDACT_VALUES", True, _flag)

    @property
    def REDACT_VALUE_PATTERN(self) -> str:
        """A case-insensitive regex of the project's own secrets inside values (e.g. a
        national id); its matches are replaced too. "" (the default): none."""
        return self._get("TASKBOARD_REDACT_VALUE_PATTERN", "", _text)

    @property
    def SUMMARY_MAX_CHARS(self) -> int:
        """Stored args, kwargs and result summaries are cut to this many characters."""
        return self._get("TASKBOARD_SUMMARY_MAX_CHARS", 2000, _whole)

    @property
    def TRACEBACK_MAX_CHARS(self) -> int:
        return self._get("TASKBOARD_TRACEBACK_MAX_CHARS", 20000, _whole)

    @property
    def PROGRESS_WRITES_PER_SECOND(self) -> float:
        """At most this many progress writes per second per task; the last value lands."""
        return self._get("TASKBOARD_PROGRESS_WRITES_PER_SECOND", 2.0, _number)

    @property
    def WRITE_DELAY(self) -> float:
        """Seconds a worker (or a script) may hold a tracking write to batch it with others:
        final states land within about this long. Requests publish synchronously."""
        return self._get("TASKBOARD_WRITE_DELAY", 0.1, _number)

    @property
    def STARTED_WRITE_DELAY(self) -> float:
        """Seconds a task runs before its STARTED row is written. A shorter task is
        recorded with one write (its final state), which keeps tracking cheap."""
        return self._get("TASKBOARD_STARTED_WRITE_DELAY", 0.25, _number)

    # --- The write buffer while the database is away -------------------------------------

    @property
    def BUFFER_MAX_WRITES(self) -> int:
        """While the database is away a process holds at most this many tracking writes in
        memory; past it they are spilled to a file (TASKBOARD_SPILL_DIR), never dropped."""
        return self._get("TASKBOARD_BUFFER_MAX_WRITES", 10000, _whole)

    @property
    def BUFFER_MAX_BYTES(self) -> int:
        """... and about this many bytes of them (an estimate of their values' size)."""
        return self._get("TASKBOARD_BUFFER_MAX_BYTES", 16_777_216, _whole)

    @property
    def BUFFER_RETRY_SECONDS(self) -> tuple[float, float]:
        """(first, most) seconds between attempts to write while the database is away:
        the wait doubles from the first to the most."""
        return self._get("TASKBOARD_BUFFER_RETRY_SECONDS", (0.5, 5.0), _pair)

    @property
    def SPILL_DIR(self) -> str:
        """The folder of spill files ("": the project's VAR_DIR/taskboard-spill, or the
        system's temp folder without VAR_DIR). Local to each machine; replayed at start."""
        return self._get("TASKBOARD_SPILL_DIR", "", _text)

    # --- Workers -------------------------------------------------------------------------

    @property
    def WORKER_SOURCES(self) -> tuple[str, ...]:
        """Where the worker panel reads workers from, tried in order until one answers:
        "flower" (skipped unless FLOWER_URL is set), "heartbeats", "inspect"."""
        return self._get("TASKBOARD_WORKER_SOURCES", ("flower", "heartbeats", "inspect"), _names)

    @property
    def WORKERS_CACHE_SECONDS(self) -> float:
        """Workers are fetched once per this many seconds for every viewer (the poll)."""
        return self._get("TASKBOARD_WORKERS_CACHE_SECONDS", 5.0, _number)

    @property
    def CACHE_ALIAS(self) -> str:
        """The cache shared by every web process (single-flight fetches, cached workers)."""
        return self._get("TASKBOARD_CACHE_ALIAS", "default", _text)

    @property
    def HEARTBEAT_INTERVAL(self) -> float:
        """A worker writes its heartbeat row at most once per this many seconds."""
        return self._get("TASKBOARD_HEARTBEAT_INTERVAL", 2.0, _number)

    @property
    def WORKER_OFFLINE_AFTER(self) -> float:
        """A worker whose last heartbeat is older than this many seconds is offline."""
        return self._get("TASKBOARD_WORKER_OFFLINE_AFTER", 10.0, _number)

    @property
    def RECONCILE_INTERVAL(self) -> float:
        """Seconds between reconciliations started from the web (dashboard polls, any web
        process, single-flight); 0: only beat runs it."""
        return self._get("TASKBOARD_RECONCILE_INTERVAL", 15.0, _number)

    @property
    def INSPECT_TIMEOUT(self) -> float:
        """Seconds Celery's inspect() waits for workers to answer."""
        return self._get("TASKBOARD_INSPECT_TIMEOUT", 1.0, _number)

    @property
    def RETENTION_DAYS(self) -> float:
        """Finished executions older than this many days are pruned (0: kept forever)."""
        return self._get("TASKBOARD_RETENTION_DAYS", 90.0, _number)

    @property
    def FLOWER_URL(self) -> str:
        return self._get("FLOWER_URL", "", _text).rstrip("/")

    @property
    def FLOWER_USER(self) -> str:
        return self._get("FLOWER_USER", "", _text)

    @property
    def FLOWER_PASSWORD(self) -> str:
        return self._get("FLOWER_PASSWORD", "", _text)

    @property
    def FLOWER_TIMEOUT(self) -> tuple[float, float]:
        """(connect, read) seconds for every call to Flower. Read allows for Flower's own
        inspect broadcast (its --inspect_timeout, 1 s by default)."""
        return self._get("TASKBOARD_FLOWER_TIMEOUT", (1.0, 3.0), _pair)

    @property
    def FLOWER_DEADLINE(self) -> float:
        """The longest, in wall-clock seconds, one look at Flower may take in total (one call,
        or the worker panel's few calls together), however slowly Flower sends its answer."""
        return self._get("TASKBOARD_FLOWER_DEADLINE", 2.5, _number)

    @property
    def REVOKE_VIA_FLOWER(self) -> bool:
        """Cancel and terminate through Flower's revoke (when FLOWER_URL is set) instead of
        Celery's broadcast; a Flower that fails falls back to the broadcast."""
        return self._get("TASKBOARD_REVOKE_VIA_FLOWER", False, _flag)

    @property
    def SITE_URL(self) -> str:
        """Scheme and host the links in notification e-mails start with, e.g.
        "https://sgm.example.com" (empty: the e-mail carries the path alone)."""
        return self._get("TASKBOARD_SITE_URL", "", _text).rstrip("/")

    @property
    def NOTIFY_SUCCESS_AFTER_SECONDS(self) -> float:
        """With no notification preferences saved, a success notifies its owner only when the
        task ran at least this long (s): short tasks are watched, not waited for. Failures,
        cancellations and losses always notify. Saved preferences decide for themselves.
        0: every success notifies."""
        return self._get("TASKBOARD_NOTIFY_SUCCESS_AFTER_SECONDS", 60.0, _number)

    @property
    def CALL_MAX_CHARS(self) -> int:
        """A task's call (args and kwargs, as JSON) is kept for retry when it is at most this
        long; a longer one is not kept and the task cannot be retried (0: never kept)."""
        return self._get("TASKBOARD_CALL_MAX_CHARS", 10000, _whole)

    # --- Bulk actions and estimates ------------------------------------------------------

    @property
    def BULK_BATCH_SIZE(self) -> int:
        """Bulk actions work through this many executions per transaction (and per revoke
        broadcast)."""
        return self._get("TASKBOARD_BULK_BATCH_SIZE", 200, _whole)

    @property
    def MAX_UNFINISHED_PER_USER(self) -> int:
        """A plain user may have at most this many unfinished (queued or running) tasks in
        all; more launches are refused (409). 0: no limit."""
        return self._get("TASKBOARD_MAX_UNFINISHED_PER_USER", 5, _whole)

    @property
    def MAX_UNFINISHED_PER_TEMPLATE(self) -> int:
        """A plain user may have at most this many unfinished tasks of one task (template).
        0: no limit."""
        return self._get("TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE", 2, _whole)

    @property
    def MAX_UNFINISHED_PER_STAFF(self) -> int:
        """Staff may have at most this many unfinished tasks in all (bulk retry stops there).
        0: no limit."""
        return self._get("TASKBOARD_MAX_UNFINISHED_PER_STAFF", 1000, _whole)

    @property
    def LAUNCHES_PER_MINUTE(self) -> int:
        """A plain user may launch (or retry) at most this many times a minute; more is
        refused (429). Counted in the shared cache. 0: no limit."""
        return self._get("TASKBOARD_LAUNCHES_PER_MINUTE", 10, _whole)

    @property
    def ETA_MIN_PROGRESS(self) -> int:
        """A running task shows the time it has left once its progress reaches this many
        percent (below it, the rate says too little)."""
        return self._get("TASKBOARD_ETA_MIN_PROGRESS", 5, _whole)

    @property
    def TYPICAL_DURATION_RUNS(self) -> int:
        """A queued task shows the median duration of this many latest successful runs of
        its task."""
        return self._get("TASKBOARD_TYPICAL_DURATION_RUNS", 100, _whole)

    @property
    def ALERT_WEBHOOK_TIMEOUT(self) -> float:
        """Seconds an alert's webhook POST may take before it counts as failed (and is
        retried with backoff)."""
        return self._get("TASKBOARD_ALERT_WEBHOOK_TIMEOUT", 5.0, _number)

    @property
    def ALERT_LOCK_SECONDS(self) -> float:
        """An evaluation of the alert rules holds its lock at most this long: two never
        overlap, and one that died frees it after this."""
        return self._get("TASKBOARD_ALERT_LOCK_SECONDS", 60.0, _number)

    # --- Prometheus metrics (/metrics) ---------------------------------------------------

    @property
    def METRICS_TOKEN(self) -> str:
        """The bearer token a scraper sends to read /metrics ("Authorization: Bearer
        <token>"). "" (the default): only a staff session may read it; never public."""
        return self._get("TASKBOARD_METRICS_TOKEN", "", _text)

    @property
    def METRICS_CACHE_SECONDS(self) -> float:
        """The metrics are read from the database at most once per this many seconds for
        every web process (the snapshot lives in the shared cache)."""
        return self._get("TASKBOARD_METRICS_CACHE_SECONDS", 10.0, _number)


_compiled: dict[str, re.Pattern[str]] = {}


def _compile(pattern: str) -> re.Pattern[str]:
    if pattern not in _compiled:
        try:
            _compiled[pattern] = re.compile(pattern, re.IGNORECASE)
        except re.error:
            _compiled[pattern] = re.compile(DEFAULT_REDACT_PATTERN, re.IGNORECASE)
    return _compiled[pattern]


conf = Settings()


def _forget(**kwargs: Any) -> None:
    conf._cache.clear()


setting_changed.connect(_forget, dispatch_uid="taskboard.conf")
