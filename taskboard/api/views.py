"""The JSON API at /api/tasks/: parameters (params.py), selectors and services, JSON
(serializers.py). Session authentication; every error is JSON `{"error": "..."}`."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import Resolver404, resolve
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.csrf import csrf_failure as html_csrf_failure

from taskboard.api import params
from taskboard.api.params import ApiError
from taskboard.api.serializers import (
    execution_as_dict,
    flower_info_as_dict,
    iso,
    snapshot_as_dict,
)
from taskboard.permissions import is_operator
from taskboard.selectors.executions import execution_get_for, execution_search
from taskboard.services.cancel import execution_cancel
from taskboard.services.workers import flower_info, snapshot_for, workers_snapshot
from taskboard.services.workers.broker import BrokerUnavailable

View = TypeVar("View", bound=Callable[..., HttpResponse])


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


def _page(request: HttpRequest, *, mine: bool) -> JsonResponse:
    """One page of executions. No COUNT(*): one row past the page says whether there is a
    next one; the total is given only when this page is the last."""
    limit = params.limit(request)
    offset = params.offset(request)
    rows = execution_search(
        viewer=request.user,
        owner=None if mine else params.owner(request),
        mine=mine,
        module=params.text(request, "module"),
        states=params.states(request),
        since=params.since(request),
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
    return json_response(snapshot_as_dict(snapshot_for(workers_snapshot(), viewer=request.user)))


@api_view("GET", staff_only=True)
def flower(request: HttpRequest) -> HttpResponse:
    return json_response(flower_info_as_dict(flower_info()))


@api_view("POST")
def cancel(request: HttpRequest, task_id: str) -> HttpResponse:
    terminate = params.terminate(request)
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
    except BrokerUnavailable:
        message = _(
            "The cancel is recorded, but the task queue (broker) is unreachable: a queued "
            "task will not run, a running one stops at its next progress report."
        )
        raise ApiError(message, status=503) from None
    if not cancelled:
        raise ApiError(_("This task has already finished."), status=409)
    return json_response(
        {
            "task_id": execution.task_id,
            "cancel_requested": True,
            "terminate": terminate,
            "cancel_requested_at": iso(execution.cancel_requested_at),
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
