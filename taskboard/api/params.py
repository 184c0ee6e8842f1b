"""The API's query and body parameters: read, checked, and refused with a message (ApiError,
answered as a JSON 400/403) rather than failing in a query."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from taskboard.inputs import whole_number
from taskboard.models import TaskState
from taskboard.permissions import may_name_owner

DEFAULT_LIMIT = 50
MAX_LIMIT = 200  # a larger limit is clamped to this, not refused
MAX_TEXT = 255  # longer filter values cannot name anything: refused
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
FALSE_VALUES = frozenset({"", "0", "false", "no", "off"})


class ApiError(Exception):
    """Answered as {"error": message} with status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def text(request: HttpRequest, name: str) -> str | None:
    value = request.GET.get(name, "").strip()
    if not value:
        return None
    # PostgreSQL refuses NUL in text: say so, rather than fail in the query.
    if "\x00" in value or len(value) > MAX_TEXT:
        raise ApiError(_("Invalid value for %(name)s.") % {"name": name})
    return value


def number(request: HttpRequest, name: str, default: int) -> int | None:
    """A whole number of at most 10 ASCII digits; None when it is not one."""
    value = request.GET.get(name, "").strip()
    if not value:
        return default
    return whole_number(value, max_digits=10)  # 10 digits fit every database's integer


def limit(request: HttpRequest) -> int:
    limit = number(request, "limit", DEFAULT_LIMIT)
    if limit is None or limit < 1:
        raise ApiError(_("limit must be a whole number, 1 or more."))
    return min(limit, MAX_LIMIT)


def offset(request: HttpRequest) -> int:
    offset = number(request, "offset", 0)
    if offset is None:
        raise ApiError(_("offset must be a whole number, 0 or more."))
    return offset


def states(request: HttpRequest) -> list[str]:
    """state=A,B or state=A&state=B, any case."""
    states: list[str] = []
    for value in request.GET.getlist("state"):
        for part in value.split(","):
            state = part.strip().upper()
            if not state:
                continue
            if state not in TaskState.values:
                raise ApiError(
                    _("Unknown state; use one of %(states)s.")
                    % {"states": ", ".join(TaskState.values)}
                )
            if state not in states:
                states.append(state)
    return states


def since(request: HttpRequest) -> datetime | None:
    """An ISO 8601 datetime (without offset: in the server's time zone) or a date (its
    midnight there)."""
    value = text(request, "since")
    if value is None:
        return None
    moment = _parse_moment(value)
    if moment is None and " " in value:
        # A "+01:00" offset sent unencoded in a query string arrives as " 01:00".
        head, _space, tail = value.rpartition(" ")
        moment = _parse_moment(f"{head}+{tail}")
    if moment is None:
        raise ApiError(
            _(
                "since must be an ISO 8601 date or datetime, "
                "e.g. 2025-01-31 or 2025-01-31T08:00:00Z."
            )
        )
    try:
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00+05:00: before year 1 in UTC
        raise ApiError(_("since is out of range.")) from None


def _parse_moment(value: str) -> datetime | None:
    try:
        moment = parse_datetime(value)
        if moment is not None:
            return moment
        day: date | None = parse_date(value)
    except ValueError:  # well formed, but no such day or time
        return None
    return None if day is None else datetime.combine(day, time.min)


def owner(request: HttpRequest) -> str | None:
    """user=<username or id>: anyone may name themselves, only staff someone else."""
    owner = text(request, "user")
    user = request.user
    if owner and not may_name_owner(user, owner):
        raise ApiError(_("You may only list your own tasks."), status=403)
    return owner


def terminate(request: HttpRequest) -> bool:
    """terminate from a form body or a JSON body."""
    raw: Any = request.POST.get("terminate", "")
    if request.content_type == "application/json" and request.body:
        try:
            body = json.loads(request.body)
        except ValueError:
            raise ApiError(_("The request body is not valid JSON.")) from None
        if not isinstance(body, dict):
            raise ApiError(_("The request body must be a JSON object."))
        raw = body.get("terminate", False)
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise ApiError(_("terminate must be 1/true or 0/false."))
