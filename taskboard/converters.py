"""A URL converter for ids taskboard does not choose: Celery task ids (code may pick its own),
module names, template keys.

Any non-empty text is a valid Celery task id, "/" included, and Django decodes "%2F" to "/"
before routing, so quoting alone cannot carry one in a path segment. This converter escapes
the few characters a segment cannot hold ("/" and the escape character "~" itself, and a
segment of dots a browser would resolve away); everything else is left to reverse()'s own
percent-quoting ("?", "#", "%", spaces, unicode). Ids without those characters keep the
URLs they always had.
"""

from __future__ import annotations

import re

from django.urls import register_converter

ESCAPE = "~"
_ESCAPES = {"~": "~7E", "/": "~2F", ".": "~2E"}
_UNESCAPES = {"7E": "~", "2F": "/", "2E": "."}
_ESCAPED = re.compile(r"~(7E|2F|2E)", re.IGNORECASE)
EMPTY = "~"  # the empty id (no task has one, but a stored row never breaks a link)
# The first segments of taskboard's own routes (urls.py; a test keeps the two in step): an id
# spelled like one is linked as "~" + the word, or /tasks/<id>/ would be that page.
RESERVED = frozenset({"fragments", "modules", "notifications", "templates", "bulk", "alerts"})


def id_to_url(value: str) -> str:
    """value as one path segment: to_python gives it back."""
    if value == "":
        return EMPTY
    if value in RESERVED:
        return ESCAPE + value
    if value.strip(".") == "":  # "." and "..": a browser would climb instead of following
        return "".join(_ESCAPES["."] for _ in value)
    if "/" not in value and ESCAPE not in value:
        return value
    return "".join(_ESCAPES.get(char, char) if char in "/~" else char for char in value)


def id_from_url(segment: str) -> str:
    """The id a segment names. A "~" that escapes nothing is taken as itself, so a hand-typed
    URL of an id with a "~" still finds it."""
    if segment == EMPTY:
        return ""
    if segment[:1] == ESCAPE and segment[1:] in RESERVED:
        return segment[1:]
    return _ESCAPED.sub(lambda match: _UNESCAPES[match.group(1).upper()], segment)


class AnyIdConverter:
    """`<anyid:task_id>`: one path segment, any non-empty text once decoded."""

    regex = r"[^/]+"

    def to_python(self, value: str) -> str:
        return id_from_url(value)

    def to_url(self, value: object) -> str:
        return id_to_url(str(value))


# Registered once, on import (both route tables import this module).
register_converter(AnyIdConverter, "anyid")
