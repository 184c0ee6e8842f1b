from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from taskboard.services.workers.broker import BROKER_UNREACHABLE, broker_errors, failure_reason
from taskboard.tracking.ownership import launching_as, user_id_of
from taskboard.views import metrics
from taskboard.views.htmx import with_message

logger = logging.getLogger(__name__)


def broker_unavailable_response(
    request: HttpRequest, message: str = "", *, execution_url: str = ""
) -> HttpResponse:
    """503: the task queue (broker) cannot be reached; JSON under /api/, else a page (the
    bare message for htmx)."""
    message = message or str(BROKER_UNREACHABLE)
    if request.path_info.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"error": message}, status=503, json_dumps_params={"ensure_ascii": False}
        )
    else:
        htmx = bool(getattr(request, "htmx", False))
        template = (
            "taskboard/partials/broker-unavailable.html"
            if htmx
            else "taskboard/broker-unavailable.html"
        )
        context = {"message": message, "execution_url": execution_url}
        response = render(request, template, context, status=503)
        if htmx and request.method != "GET":
            # An action: its message beside what was clicked (a poll's panel says itself
            # that it is stale, and shows no message every few seconds).
            with_message(response, message)
    response["Retry-After"] = "10"
    response["Cache-Control"] = "no-store"
    return response


class TaskboardMiddleware:
    """Makes the request's user the owner of every task published while handling it; and a
    broker or cache that is down or frozen, should an error of it reach this far, answers 503
    with a message instead of a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.errors = broker_errors()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with launching_as(lambda: user_id_of(getattr(request, "user", None))):
            return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, self.errors):
            return None
        logger.warning(
            "taskboard: %s %s: a dependency is unreachable (%s)",
            request.method,
            request.path,
            failure_reason(exception),
            exc_info=exception,
        )
        message = _(
            "A service taskboard needs (the task queue or the cache) is unreachable. "
            "Try again in a moment."
        )
        return broker_unavailable_response(request, message)


class MetricsScrapeMiddleware:
    """Answers a scrape that carries a bearer token before host validation and the HTTPS
    redirect: Prometheus reaches web over the internal network (http://web:8000/metrics),
    a host and a scheme the public settings refuse. Without a token the request goes the
    usual way (a staff session in a browser)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == metrics.PATH and metrics.bearer_token(request) is not None:
            return metrics.metrics(request)
        return self.get_response(request)
