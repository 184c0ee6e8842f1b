"""taskboard's settings, each with its default, read on access so override_settings works."""

from __future__ import annotations

import re
from typing import Literal, cast

from django.conf import settings

DEFAULT_REDACT_PATTERN = (
    r"pass(word|wd|phrase)?|secret|token|api[-_]?key|auth|credential|private[-_]?key|"
    r"cookie|session|signature|iban|card[-_]?number|cvv|pin$"
)


class Settings:
    @property
    def ENABLED(self) -> bool:
        """Master switch: when off, no task is tracked (the benchmark's baseline)."""
        return bool(getattr(settings, "TASKBOARD_ENABLED", True))

    @property
    def TRACK(self) -> Literal["all", "decorated"]:
        """ "all": every Celery task; "decorated": only tasks under @track_task."""
        return cast(Literal["all", "decorated"], getattr(settings, "TASKBOARD_TRACK", "all"))

    @property
    def EXCLUDE(self) -> tuple[str, ...]:
        """fnmatch patterns of task names never tracked (Celery's own tasks by default)."""
        return tuple(getattr(settings, "TASKBOARD_EXCLUDE", ("celery.*",)))

    @property
    def REDACT_PATTERN(self) -> str:
        """Keys (and parameter names) matching this case-insensitive regex are redacted."""
        return str(getattr(settings, "TASKBOARD_REDACT_PATTERN", DEFAULT_REDACT_PATTERN))

    @property
    def redact_regex(self) -> re.Pattern[str]:
        return _compile(self.REDACT_PATTERN)

    @property
    def SUMMARY_MAX_CHARS(self) -> int:
        """Stored args, kwargs and result summaries are cut to this many characters."""
        return int(getattr(settings, "TASKBOARD_SUMMARY_MAX_CHARS", 2000))

    @property
    def TRACEBACK_MAX_CHARS(self) -> int:
        return int(getattr(settings, "TASKBOARD_TRACEBACK_MAX_CHARS", 20000))

    @property
    def PROGRESS_WRITES_PER_SECOND(self) -> float:
        """At most this many progress writes per second per task; the last value lands."""
        return float(getattr(settings, "TASKBOARD_PROGRESS_WRITES_PER_SECOND", 2.0))

    @property
    def WRITE_DELAY(self) -> float:
        """Seconds a worker (or a script) may hold a tracking write to batch it with others:
        final states land within about this long. Requests publish synchronously."""
        return float(getattr(settings, "TASKBOARD_WRITE_DELAY", 0.1))

    @property
    def STARTED_WRITE_DELAY(self) -> float:
        """Seconds a task runs before its STARTED row is written. A shorter task is
        recorded with one write (its final state), which keeps tracking cheap."""
        return float(getattr(settings, "TASKBOARD_STARTED_WRITE_DELAY", 0.25))


_compiled: dict[str, re.Pattern[str]] = {}


def _compile(pattern: str) -> re.Pattern[str]:
    if pattern not in _compiled:
        _compiled[pattern] = re.compile(pattern, re.IGNORECASE)
    return _compiled[pattern]


conf = Settings()
