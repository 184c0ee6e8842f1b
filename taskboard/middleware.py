from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from taskboard.tracking.ownership import launching_as, user_id_of


class TaskboardMiddleware:
    """Makes the request's user the owner of every task published while handling it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with launching_as(lambda: user_id_of(getattr(request, "user", None))):
            return self.get_response(request)
