"""System checks: misconfiguration is reported by `manage.py check`, not at request time.

Every setting taskboard.conf reads has one rule, checked on its raw value (taskboard.conf
returns a setting's default instead of a value of the wrong type, so it is never read
through conf here). The ids are stable: a new rule takes a new id.

    id: setting: rule
    taskboard.E001: TASKBOARD_TRACK: "all" or "decorated"
    taskboard.E002: TASKBOARD_REDACT_PATTERN: a str holding a valid regular expression
    taskboard.E003: TASKBOARD_PROGRESS_WRITES_PER_SECOND: a finite number, more than 0
    taskboard.E004: TASKBOARD_WORKER_SOURCES: a list or tuple of str, each "flower",
        "heartbeats", "inspect" or an importable dotted path
    taskboard.E005: TASKBOARD_ENABLED: a bool
    taskboard.E006: TASKBOARD_EXCLUDE: a list or tuple of str
    taskboard.E007: TASKBOARD_SUMMARY_MAX_CHARS: a whole number, 0 or more
    taskboard.E008: TASKBOARD_TRACEBACK_MAX_CHARS: a whole number, 0 or more
    taskboard.E009: TASKBOARD_WRITE_DELAY: a finite number of seconds, 0 or more
    taskboard.E010: TASKBOARD_STARTED_WRITE_DELAY: a finite number of seconds, 0 or more
    taskboard.E011: TASKBOARD_WORKERS_CACHE_SECONDS: a finite number of seconds, more than 0
    taskboard.E012: TASKBOARD_CACHE_ALIAS: a str naming a cache in CACHES
    taskboard.E013: TASKBOARD_HEARTBEAT_INTERVAL: a finite number of seconds, more than 0
    taskboard.E014: TASKBOARD_WORKER_OFFLINE_AFTER: a finite number of seconds, more than 0
    taskboard.E015: TASKBOARD_INSPECT_TIMEOUT: a finite number of seconds, more than 0
    taskboard.E016: TASKBOARD_RETENTION_DAYS: a finite number of days, 0 or more
    taskboard.E017: FLOWER_URL: a str; when set, an http:// or https:// URL with a host
    taskboard.E018: FLOWER_USER: a str
    taskboard.E019: FLOWER_PASSWORD: a str
    taskboard.E020: TASKBOARD_FLOWER_TIMEOUT: a (connect, read) pair of finite numbers of
        seconds, each more than 0
    taskboard.E021: TASKBOARD_REVOKE_VIA_FLOWER: a bool
    taskboard.E022: TASKBOARD_SITE_URL: a str; when set, an http:// or https:// URL with a
        host
    taskboard.E023: TASKBOARD_CALL_MAX_CHARS: a whole number, 0 or more
    taskboard.E024: TASKBOARD_BULK_BATCH_SIZE: a whole number, 1 or more
    taskboard.E026: TASKBOARD_ETA_MIN_PROGRESS: a whole number from 1 to 100
    taskboard.E027: TASKBOARD_TYPICAL_DURATION_RUNS: a whole number, 1 or more
    taskboard.E030: TASKBOARD_FLOWER_DEADLINE: a finite number of seconds, more than 0
    taskboard.E040: TASKBOARD_BUFFER_MAX_WRITES: a whole number, 1 or more
    taskboard.E041: TASKBOARD_BUFFER_MAX_BYTES: a whole number, 1 or more
    taskboard.E042: TASKBOARD_BUFFER_RETRY_SECONDS: a (first, most) pair of finite numbers
        of seconds, each more than 0, first at most most
    taskboard.E043: TASKBOARD_SPILL_DIR: a str; when set, an absolute path
    taskboard.E060: TASKBOARD_RECONCILE_INTERVAL: a finite number of seconds, 0 or more
    taskboard.E070: TASKBOARD_MAX_UNFINISHED_PER_USER: a whole number, 0 or more
    taskboard.E071: TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE: a whole number, 0 or more
    taskboard.E072: TASKBOARD_MAX_UNFINISHED_PER_STAFF: a whole number, 0 or more
    taskboard.E073: TASKBOARD_LAUNCHES_PER_MINUTE: a whole number, 0 or more
    taskboard.E090: TASKBOARD_REDACT_VALUE_PATTERN: a str holding a valid regular expression
        ("" for none)
    taskboard.E091: TASKBOARD_REDACT_VALUES: a bool
    taskboard.E100: TASKBOARD_NOTIFY_SUCCESS_AFTER_SECONDS: a finite number of seconds, 0 or more
    taskboard.E110: TASKBOARD_ALERT_WEBHOOK_TIMEOUT: a finite number of seconds, more than 0
    taskboard.E111: TASKBOARD_ALERT_LOCK_SECONDS: a finite number of seconds, more than 0
    taskboard.E112: TASKBOARD_METRICS_TOKEN: a str ("" for none: staff sessions only)
    taskboard.E113: TASKBOARD_METRICS_CACHE_SECONDS: a finite number of seconds, more than 0
    taskboard.W001: MIDDLEWARE: holds taskboard.middleware.TaskboardMiddleware
    taskboard.W002: FLOWER_PASSWORD: set when FLOWER_URL is (and "flower" is a worker source)
    taskboard.W003: TASKBOARD_WORKER_OFFLINE_AFTER: more than TASKBOARD_HEARTBEAT_INTERVAL

A "whole number" is an int (not a bool); a "number" is an int or a float (not a bool).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.utils.module_loading import import_string

from taskboard.conf import DEFAULT_REDACT_PATTERN, conf

MIDDLEWARE_PATH = "taskboard.middleware.TaskboardMiddleware"
BUILTIN_SOURCES = ("flower", "heartbeats", "inspect")

# A validator returns None for a valid value, else what the setting must be.
Validator = Callable[[Any], str | None]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def boolean() -> Validator:
    return lambda value: None if isinstance(value, bool) else "True or False"


def whole(minimum: int, maximum: int | None = None) -> Validator:
    expected = (
        f"a whole number, {minimum} or more"
        if maximum is None
        else f"a whole number from {minimum} to {maximum}"
    )

    def validate(value: Any) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return expected
        if value < minimum or (maximum is not None and value > maximum):
            return expected
        return None

    return validate


def positive(unit: str) -> Validator:
    expected = f"a finite number of {unit}, more than 0"
    return lambda value: None if _is_number(value) and value > 0 else expected


def non_negative(unit: str) -> Validator:
    expected = f"a finite number of {unit}, 0 or more"
    return lambda value: None if _is_number(value) and value >= 0 else expected


def one_of(*choices: str) -> Validator:
    expected = " or ".join(f'"{choice}"' for choice in choices)
    return lambda value: None if isinstance(value, str) and value in choices else expected


def text() -> Validator:
    return lambda value: None if isinstance(value, str) else "a str"


def names() -> Validator:
    def validate(value: Any) -> str | None:
        if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            return None
        return "a list or tuple of str"

    return validate


def regex() -> Validator:
    def validate(value: Any) -> str | None:
        if not isinstance(value, str):
            return "a str holding a regular expression"
        try:
            re.compile(value)
        except re.error as exc:
            return f"a valid regular expression ({exc})"
        return None

    return validate


def url() -> Validator:
    expected = 'a URL starting with http:// or https:// and naming a host, or "" (unset)'

    def validate(value: Any) -> str | None:
        if not isinstance(value, str):
            return expected
        if not value:
            return None
        try:
            parts = urlsplit(value)
        except ValueError:
            return expected
        return None if parts.scheme in ("http", "https") and parts.hostname else expected

    return validate


def timeout_pair() -> Validator:
    def validate(value: Any) -> str | None:
        if (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(_is_number(item) and item > 0 for item in value)
        ):
            return None
        return "a (connect, read) pair of finite numbers of seconds, each more than 0"

    return validate


def cache_alias() -> Validator:
    def validate(value: Any) -> str | None:
        aliases = list(getattr(settings, "CACHES", {}))
        if isinstance(value, str) and value in aliases:
            return None
        return "the name of a cache in CACHES (" + ", ".join(map(repr, aliases)) + ")"

    return validate


def worker_sources() -> Validator:
    expected = (
        f"a list or tuple of worker sources, each one of {', '.join(BUILTIN_SOURCES)} "
        "or the dotted path of an importable source"
    )

    def validate(value: Any) -> str | None:
        if names()(value) is not None:
            return expected
        for name in value:
            if name in BUILTIN_SOURCES:
                continue
            try:
                import_string(name)
            except ImportError as exc:
                return f"{expected} ({name!r} is not importable: {exc})"
        return None

    return validate


def backoff_pair() -> Validator:
    expected = (
        "a (first, most) pair of finite numbers of seconds, each more than 0, the first "
        "at most the most"
    )

    def validate(value: Any) -> str | None:
        if (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(_is_number(item) and item > 0 for item in value)
            and value[0] <= value[1]
        ):
            return None
        return expected

    return validate


def absolute_path() -> Validator:
    expected = 'an absolute path, or "" (the default folder)'

    def validate(value: Any) -> str | None:
        if isinstance(value, str) and (not value or os.path.isabs(value)):
            return None
        return expected

    return validate


class Rule(NamedTuple):
    setting: str
    default: Any
    validator: Validator
    id: str


# One rule per setting taskboard.conf reads, with conf's default (see the ids above).
RULES: tuple[Rule, ...] = (
    Rule("TASKBOARD_TRACK", "all", one_of("all", "decorated"), "taskboard.E001"),
    Rule("TASKBOARD_REDACT_PATTERN", DEFAULT_REDACT_PATTERN, regex(), "taskboard.E002"),
    Rule("TASKBOARD_PROGRESS_WRITES_PER_SECOND", 2.0, positive("writes/s"), "taskboard.E003"),
    Rule("TASKBOARD_WORKER_SOURCES", BUILTIN_SOURCES, worker_sources(), "taskboard.E004"),
    Rule("TASKBOARD_ENABLED", True, boolean(), "taskboard.E005"),
    Rule("TASKBOARD_EXCLUDE", ("celery.*", "taskboard.*"), names(), "taskboard.E006"),
    Rule("TASKBOARD_SUMMARY_MAX_CHARS", 2000, whole(0), "taskboard.E007"),
    Rule("TASKBOARD_TRACEBACK_MAX_CHARS", 20000, whole(0), "taskboard.E008"),
    Rule("TASKBOARD_WRITE_DELAY", 0.1, non_negative("seconds"), "taskboard.E009"),
    Rule("TASKBOARD_STARTED_WRITE_DELAY", 0.25, non_negative("seconds"), "taskboard.E010"),
    Rule("TASKBOARD_WORKERS_CACHE_SECONDS", 5.0, positive("seconds"), "taskboard.E011"),
    Rule("TASKBOARD_CACHE_ALIAS", "default", cache_alias(), "taskboard.E012"),
    Rule("TASKBOARD_HEARTBEAT_INTERVAL", 2.0, positive("seconds"), "taskboard.E013"),
    Rule("TASKBOARD_WORKER_OFFLINE_AFTER", 10.0, positive("seconds"), "taskboard.E014"),
    Rule("TASKBOARD_INSPECT_TIMEOUT", 1.0, positive("seconds"), "taskboard.E015"),
    Rule("TASKBOARD_RETENTION_DAYS", 90.0, non_negative("days"), "taskboard.E016"),
    Rule("FLOWER_URL", "", url(), "taskboard.E017"),
    Rule("FLOWER_USER", "", text(), "taskboard.E018"),
    Rule("FLOWER_PASSWORD", "", text(), "taskboard.E019"),
    Rule("TASKBOARD_FLOWER_TIMEOUT", (1.0, 3.0), timeout_pair(), "taskboard.E020"),
    Rule("TASKBOARD_REVOKE_VIA_FLOWER", False, boolean(), "taskboard.E021"),
    Rule("TASKBOARD_SITE_URL", "", url(), "taskboard.E022"),
    Rule("TASKBOARD_CALL_MAX_CHARS", 10000, whole(0), "taskboard.E023"),
    Rule("TASKBOARD_BULK_BATCH_SIZE", 200, whole(1), "taskboard.E024"),
    Rule("TASKBOARD_ETA_MIN_PROGRESS", 5, whole(1, 100), "taskboard.E026"),
    Rule("TASKBOARD_TYPICAL_DURATION_RUNS", 100, whole(1), "taskboard.E027"),
    Rule("TASKBOARD_FLOWER_DEADLINE", 2.5, positive("seconds"), "taskboard.E030"),
    Rule("TASKBOARD_BUFFER_MAX_WRITES", 10000, whole(1), "taskboard.E040"),
    Rule("TASKBOARD_BUFFER_MAX_BYTES", 16_777_216, whole(1), "taskboard.E041"),
    Rule("TASKBOARD_BUFFER_RETRY_SECONDS", (0.5, 5.0), backoff_pair(), "taskboard.E042"),
    Rule("TASKBOARD_SPILL_DIR", "", absolute_path(), "taskboard.E043"),
    Rule("TASKBOARD_RECONCILE_INTERVAL", 15.0, non_negative("seconds"), "taskboard.E060"),
    Rule("TASKBOARD_MAX_UNFINISHED_PER_USER", 5, whole(0), "taskboard.E070"),
    Rule("TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE", 2, whole(0), "taskboard.E071"),
    Rule("TASKBOARD_MAX_UNFINISHED_PER_STAFF", 1000, whole(0), "taskboard.E072"),
    Rule("TASKBOARD_LAUNCHES_PER_MINUTE", 10, whole(0), "taskboard.E073"),
    Rule("TASKBOARD_REDACT_VALUE_PATTERN", "", regex(), "taskboard.E090"),
    Rule("TASKBOARD_REDACT_VALUES", True, boolean(), "taskboard.E091"),
    Rule("TASKBOARD_NOTIFY_SUCCESS_AFTER_SECONDS", 60.0, non_negative("seconds"), "taskboard.E100"),
    Rule("TASKBOARD_ALERT_WEBHOOK_TIMEOUT", 5.0, positive("seconds"), "taskboard.E110"),
    Rule("TASKBOARD_ALERT_LOCK_SECONDS", 60.0, positive("seconds"), "taskboard.E111"),
    Rule("TASKBOARD_METRICS_TOKEN", "", text(), "taskboard.E112"),
    Rule("TASKBOARD_METRICS_CACHE_SECONDS", 10.0, positive("seconds"), "taskboard.E113"),
)


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _raw(rule: Rule) -> Any:
    return getattr(settings, rule.setting, rule.default)


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    invalid: set[str] = set()
    for rule in RULES:
        value = _raw(rule)
        expected = rule.validator(value)
        if expected is not None:
            invalid.add(rule.setting)
            messages.append(
                Error(f"{rule.setting} must be {expected}; it is {_show(value)}.", id=rule.id)
            )
    if MIDDLEWARE_PATH not in settings.MIDDLEWARE:
        messages.append(
            Warning(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE: tasks launched from requests "
                "will not record who launched them.",
                id="taskboard.W001",
            )
        )
    # conf's properties never raise: a value of the wrong type reads as its default.
    if "flower" in conf.WORKER_SOURCES and conf.FLOWER_URL and not conf.FLOWER_PASSWORD:
        messages.append(
            Warning(
                "FLOWER_URL is set without FLOWER_PASSWORD: Flower should never be reachable "
                "without authentication.",
                id="taskboard.W002",
            )
        )
    beats = {"TASKBOARD_HEARTBEAT_INTERVAL", "TASKBOARD_WORKER_OFFLINE_AFTER"}
    if not beats & invalid and conf.WORKER_OFFLINE_AFTER <= conf.HEARTBEAT_INTERVAL:
        messages.append(
            Warning(
                f"TASKBOARD_WORKER_OFFLINE_AFTER ({conf.WORKER_OFFLINE_AFTER:g} s) should be "
                f"more than TASKBOARD_HEARTBEAT_INTERVAL ({conf.HEARTBEAT_INTERVAL:g} s): a "
                "worker would look offline between two of its heartbeats.",
                id="taskboard.W003",
            )
        )
    return messages
