"""Idle polls that cost almost nothing: a polled panel renders with the change stamp of
what it shows (`data-taskboard-stamp`; taskboard.js sends it back as `X-Taskboard-Stamp`
on that panel's own requests), and while nothing changed the poll is answered 204 — htmx
swaps nothing — without a query for the data or a render (taskboard/tracking/stamps.py)."""

from __future__ import annotations

from django.http import HttpResponse

from taskboard.tracking.stamps import HEADER, stamp_current
from taskboard.views.htmx import HtmxHttpRequest


def poll_stamp(request: HtmxHttpRequest, element_id: str) -> tuple[str | None, bool]:
    """(the stamp to render with, whether this request is element_id's own poll of an
    unchanged record). Only the panel's own request counts: its links and buttons ask for
    something else."""
    stamp = viewer_stamp(request)
    own = bool(request.htmx) and request.htmx.trigger == element_id
    return stamp, stamp is not None and own and request.headers.get(HEADER) == stamp


def viewer_stamp(request: HtmxHttpRequest) -> str | None:
    """The change stamp for this viewer (their buckets turn at their own moment)."""
    return stamp_current(spread=request.session.session_key or "")


def not_changed() -> HttpResponse:
    return HttpResponse(status=204)
