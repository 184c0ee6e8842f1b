"""The JSON API at /api/tasks/: parse and check parameters, call selectors and services,
serialize. Session authentication; every error is JSON `{"error": "..."}`."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any, TypeVar, cast

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _
from django.views.csrf import csrf_failure as html_csrf_failure

from taskboard.inputs import whole_number
from taskboard.models import TaskExecution, TaskState
from taskboard.permissions import is_operator, may_name_owner
from taskboard.selectors.executions import execution_get_for, execution_search
from taskboard.services.cancel import execution_cancel
from taskboard.services.workers import flower_info, snapshot_for, workers_snapshot

DEFAULT_LIMIT = 50
MAX_LIMIT = 200  # a larger limit is clamped to this, not refused
MAX_TEXT = 255  # longer filter values cannot name anything: refused
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
FALSE_VALUES = frozenset({"", "0", "false", "no", "off"})

View = TypeVar("View", bound=Callable[..., HttpResponse])


class ApiError(Exception):
    """Answered as {"error": message} with status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def json_response(data: dict[str, Any], status: int = 200) -> JsonResponse:
    # UTF-8 as is: names such as "Consolidar nómina" stay readable.
    return JsonResponse(data, status=status, json_dumps_params={"ensure_ascii": False})


def error_response(message: str, status: int) -> JsonResponse:
    return json_response({"error": message}, status)


def api_view(*methods: str, staff_only: bool = False) -> Callable[[View], View]:
    """The API's common rules, in this order: the method (405 with Allow), a logged-in user
    (403: an API never redirects to the login page), staff where required (403), and
    ApiError raised by the view turned into its JSON answer. Responses are never cached."""

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            response: HttpResponse
            if request.method not in methods:
                response = error_response(_("Method not allowed."), 405)
                response["Allow"] = ", ".join(methods)
            elif not request.user.is_authenticated:
                response = error_response(_("Authentication required: log in first."), 403)
            elif staff_only and not is_operator(request.user):
                response = error_response(_("Only staff may use this endpoint."), 403)
            else:
                try:
                    response = view(request, *args, **kwargs)
                except ApiError as exc:
                    response = error_response(exc.message, exc.status)
                except (BadRequest, SuspiciousOperation, MultiPartParserError) as exc:
                    # Django's HTML 400 (too many fields, a body too big...), as JSON; logged
                    # as Django logs it.
                    _log_bad_request(request, exc)
                    response = error_response(_("Bad request."), 400)
            add_never_cache_headers(response)
            return response

        return cast(View, wrapped)

    return decorator


def _log_bad_request(request: HttpRequest, exc: Exception) -> None:
    name = type(exc).__name__
    logger = f"django.security.{name}" if isinstance(exc, SuspiciousOperation) else "django.request"
    extra = {"status_code": 400, "request": request}
    logging.getLogger(logger).warning("Bad request: %s", exc, extra=extra)


# --- Parameters -----------------------------------------------------------------------------


def _text(request: HttpRequest, name: str) -> str | None:
    value = request.GET.get(name, "").strip()
    if not value:
        return None
    # PostgreSQL refuses NUL in text: say so, rather than fail in the query.
    if "\x00" in value or len(value) > MAX_TEXT:
        raise ApiError(_("Invalid value for %(name)s.") % {"name": name})
    return value


def _number(request: HttpRequest, name: str, default: int) -> int | None:
    """A whole number of at most 10 ASCII digits; None when it is not one."""
    value = request.GET.get(name, "").strip()
    if not value:
        return default
    return whole_number(value, max_digits=10)  # 10 digits fit every database's integer


def _limit(request: HttpRequest) -> int:
    limit = _number(request, "limit", DEFAULT_LIMIT)
    if limit is None or limit < 1:
        raise ApiError(_("limit must be a whole number, 1 or more."))
    return min(limit, MAX_LIMIT)


def _offset(request: HttpRequest) -> int:
    offset = _number(request, "offset", 0)
    if offset is None:
        raise ApiError(_("offset must be a whole number, 0 or more."))
    return offset


def _states(request: HttpRequest) -> list[str]:
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


def _since(request: HttpRequest) -> datetime | None:
    """An ISO 8601 datetime (without offset: in the server's time zone) or a date (its
    midnight there)."""
    value = _text(request, "since")
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


def _owner(request: HttpRequest) -> str | None:
    """user=<username or id>: anyone may name themselves, only staff someone else."""
    owner = _text(request, "user")
    user = request.user
    if owner and not may_name_owner(user, owner):
        raise ApiError(_("You may only list your own tasks."), status=403)
    return owner


def _terminate(request: HttpRequest) -> bool:
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


# --- Serialization --------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def execution_as_dict(execution: TaskExecution) -> dict[str, Any]:
    has_error = execution.exception_type or execution.exception_message
    return {
        "task_id": execution.task_id,
        "task_name": execution.task_name,
        "display_name": execution.display_name,
        "module": execution.module,
        "user": execution.user.get_username() if execution.user is not None else None,
        "state": execution.state,
        "progress": execution.progress,
        "progress_message": execution.progress_message,
        "worker": execution.worker,
        "queue": execution.queue,
        "retries": execution.retries,
        "created_at": _iso(execution.created_at),
        "started_at": _iso(execution.started_at),
        "finished_at": _iso(execution.finished_at),
        "duration": execution.duration,
        "result_summary": execution.result_summary,
        "exception": (
            {"type": execution.exception_type, "message": execution.exception_message}
            if has_error
            else None
        ),
        "url": reverse("taskboard:detail", args=[execution.task_id]),
        "cancel_requested_at": _iso(execution.cancel_requested_at),
    }


def _page(request: HttpRequest, *, mine: bool) -> JsonResponse:
    """One page of executions. No COUNT(*): one row past the page says whether there is a
    next one; the total is given only when this page is the last."""
    limit = _limit(request)
    offset = _offset(request)
    rows = execution_search(
        viewer=request.user,
        owner=None if mine else _owner(request),
        mine=mine,
        module=_text(request, "module"),
        states=_states(request),
        since=_since(request),
    )
    page = list(rows[offset : offset + limit + 1])
    more = len(page) > limit
    page = page[:limit]
    count = None if more or (not page and offset) else offset + len(page)
    return json_response(
        {
            "count": count,
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if more else None,
            "results": [execution_as_dict(execution) for execution in page],
        }
    )


# --- Views ----------------------------------------------------------------------------------


@api_view("GET")
def executions(request: HttpRequest) -> HttpResponse:
    """Staff: everyone's executions (user= narrows); others: their own."""
    return _page(request, mine=False)


@api_view("GET")
def user_tasks(request: HttpRequest) -> HttpResponse:
    """The caller's own executions, staff included."""
    return _page(request, mine=True)


@api_view("GET")
def workers(request: HttpRequest) -> HttpResponse:
    return json_response(snapshot_for(workers_snapshot(), viewer=request.user).as_dict())


@api_view("GET", staff_only=True)
def flower(request: HttpRequest) -> HttpResponse:
    return json_response(flower_info().as_dict())


@api_view("POST")
def cancel(request: HttpRequest, task_id: str) -> HttpResponse:
    terminate = _terminate(request)
    execution = execution_get_for(viewer=request.user, task_id=task_id)
    if execution is None:  # also another user's task: its existence is not revealed
        raise ApiError(_("No such task."), status=404)
    try:
        cancelled = execution_cancel(execution=execution, by=request.user, terminate=terminate)
    except PermissionDenied:  # the service holds the rule: owner or staff, terminate staff
        message = (
            _("Only staff may terminate a task.")
            if terminate
            else _("You may not cancel this task.")
        )
        raise ApiError(message, status=403) from None
    if not cancelled:
        raise ApiError(_("This task has already finished."), status=409)
    return json_response(
        {
            "task_id": execution.task_id,
            "cancel_requested": True,
            "terminate": terminate,
            "cancel_requested_at": _iso(execution.cancel_requested_at),
            "cancel_requested_by": request.user.get_username(),
        }
    )


def not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    """Any other path under the API: a JSON 404 (not Django's HTML page), with a hint when
    only the trailing slash is missing (no redirect: a POST would not survive it)."""
    message = _("No such API endpoint.")
    if not request.path_info.endswith("/"):
        try:
            match = resolve(request.path_info + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not not_found:
            message = _("No such API endpoint; did you mean %(path)s?") % {
                "path": request.path + "/"
            }
    response = error_response(message, 404)
    add_never_cache_headers(response)
    return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a JSON 403 under /api/, Django's own page everywhere else."""
    if request.path_info.startswith("/api/"):
        message = _(
            "CSRF verification failed (%(reason)s). Send the csrftoken cookie's value "
            "in an X-CSRFToken header."
        )
        return error_response(message % {"reason": reason}, 403)
    return html_csrf_failure(request, reason)
