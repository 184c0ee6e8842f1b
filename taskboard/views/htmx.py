"""The htmx vocabulary of taskboard's pages: the request type, the event that tells every
panel on a page to refresh now (after an action), not at its next poll, and the answer to an
action that was refused."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django_htmx.http import trigger_client_event
from django_htmx.middleware import HtmxDetails

CHANGED_EVENT = "taskboard:changed"
# taskboard.js shows {"text", "level"} beside the element that made the request.
MESSAGE_EVENT = "taskboard:message"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def with_message(response: HttpResponse, text: str, *, level: str = "error") -> HttpResponse:
    """response, and the page shows text beside what was clicked (any status)."""
    return trigger_client_event(response, MESSAGE_EVENT, {"text": str(text), "level": level})


def refused(text: str, *, status: int) -> HttpResponse:
    """An action refused (403, 409, 503…): the message as the body (a plain POST without
    JavaScript reads it), shown beside the button by htmx, and every panel refreshes so
    the row shows what is true now."""
    response = HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
    with_message(response, text)
    return trigger_client_event(response, CHANGED_EVENT)
