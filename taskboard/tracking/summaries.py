"""Safe, size-capped summaries of task arguments, results and errors for storage.

Keys (and parameter names) that look secret are replaced before anything is serialised,
so a password never reaches the database, even truncated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from taskboard.conf import conf

REDACTED = "[REDACTED]"
MAX_DEPTH = 6
MAX_ITEMS = 100
ELLIPSIS = "…"


def is_secret_name(name: object) -> bool:
    return isinstance(name, str) and conf.redact_regex.search(name) is not None


def redact(value: Any, depth: int = 0) -> Any:
    """A JSON-friendly copy of value with secret-looking keys replaced."""
    if depth >= MAX_DEPTH:
        return ELLIPSIS
    if isinstance(value, Mapping):
        items = list(value.items())
        out = {
            str(key): REDACTED if is_secret_name(str(key)) else redact(item, depth + 1)
            for key, item in items[:MAX_ITEMS]
        }
        if len(items) > MAX_ITEMS:
            out[ELLIPSIS] = f"+{len(items) - MAX_ITEMS}"
        return out
    if isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray):
        seq = list(value)
        redacted = [redact(item, depth + 1) for item in seq[:MAX_ITEMS]]
        if len(seq) > MAX_ITEMS:
            redacted.append(f"{ELLIPSIS}+{len(seq) - MAX_ITEMS}")
        return redacted
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS


def to_text(value: Any, limit: int | None = None) -> str:
    text = json.dumps(redact(value), ensure_ascii=False, default=repr)
    return cap(text, conf.SUMMARY_MAX_CHARS if limit is None else limit)


def args_summary(args: Sequence[Any] | None, param_names: Sequence[str] = ()) -> str:
    """Positional arguments, each redacted when its parameter's name looks secret."""
    values = list(args or ())
    masked = [
        REDACTED if index < len(param_names) and is_secret_name(param_names[index]) else value
        for index, value in enumerate(values)
    ]
    return to_text(masked)


def kwargs_summary(kwargs: Mapping[str, Any] | None) -> str:
    return to_text(dict(kwargs or {}))


def exception_summary(exc: BaseException) -> tuple[str, str]:
    """(type name, message), capped."""
    kind = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        kind = f"{module}.{kind}"
    return cap(kind, 255), cap(str(exc), conf.SUMMARY_MAX_CHARS)


def traceback_summary(text: str | None) -> str:
    """The last part of a traceback is the useful one: keep the tail when cutting."""
    if not text:
        return ""
    limit = conf.TRACEBACK_MAX_CHARS
    if len(text) <= limit:
        return text
    return ELLIPSIS + text[-(limit - 1) :]
