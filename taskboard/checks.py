"""System checks: misconfiguration is reported by `manage.py check`, not at request time."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.utils.module_loading import import_string

from taskboard.conf import conf

MIDDLEWARE_PATH = "taskboard.middleware.TaskboardMiddleware"


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    if conf.TRACK not in ("all", "decorated"):
        messages.append(
            Error(
                f"TASKBOARD_TRACK must be 'all' or 'decorated', not {conf.TRACK!r}.",
                id="taskboard.E001",
            )
        )
    try:
        re.compile(conf.REDACT_PATTERN)
    except re.error as exc:
        messages.append(
            Error(f"TASKBOARD_REDACT_PATTERN is not a valid regex: {exc}.", id="taskboard.E002")
        )
    if conf.PROGRESS_WRITES_PER_SECOND <= 0:
        messages.append(
            Error("TASKBOARD_PROGRESS_WRITES_PER_SECOND must be positive.", id="taskboard.E003")
        )
    messages += _check_worker_sources()
    if MIDDLEWARE_PATH not in settings.MIDDLEWARE:
        messages.append(
            Warning(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE: tasks launched from requests "
                "will not record who launched them.",
                id="taskboard.W001",
            )
        )
    return messages


BUILTIN_SOURCES = ("flower", "heartbeats", "inspect")


def _check_worker_sources() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for name in conf.WORKER_SOURCES:
        if name in BUILTIN_SOURCES:
            continue
        try:
            import_string(name)
        except ImportError as exc:
            messages.append(
                Error(
                    f"TASKBOARD_WORKER_SOURCES names {name!r}, which is neither one of "
                    f"{', '.join(BUILTIN_SOURCES)} nor importable: {exc}.",
                    id="taskboard.E004",
                )
            )
    if "flower" in conf.WORKER_SOURCES and conf.FLOWER_URL and not conf.FLOWER_PASSWORD:
        messages.append(
            Warning(
                "FLOWER_URL is set without FLOWER_PASSWORD: Flower should never be reachable "
                "without authentication.",
                id="taskboard.W002",
            )
        )
    return messages
