"""The htmx vocabulary of taskboard's pages: the request type, and the event that tells every
panel on a page to refresh now (after an action), not at its next poll."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

CHANGED_EVENT = "taskboard:changed"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
