"""Idle polls that cost almost nothing: a polled panel renders with the change stamp of
what it shows (`data-taskboard-stamp`; taskboard.js sends it back as `X-Taskboard-Stamp`
on that panel's own requests), and while nothing changed the poll is answered 204 — htmx
swaps nothing — without a query for the data or a render (taskboard/tracking/stamps.py).

The dashboard's pulse goes further: while nothing changed it answers without a query at
all. Loading request.user is the one query left (a fresh connection per request in
production makes it the dearest part of the poll), so a viewer a full request authenticated
in the last VIEWER_SECONDS is remembered in the shared cache by their session's auth hash,
and a session that carries that hash is answered 204 without loading the user. A 204 says
nothing but "unchanged"; anything with a body loads the user as every view does. Saving or
deleting the user forgets them (a password change, a deactivation), and so does time: a
change made behind the ORM's back (queryset.update) holds at most VIEWER_SECONDS. These
reads share the change stamp's skip window (the same cache): once either found it frozen,
neither asks it again for a few seconds."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare

from taskboard.tracking.stamps import HEADER, cache_window, stamp_current
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


VIEWER_KEY = "taskboard:viewer:{}"
VIEWER_SECONDS = 60


def viewer_known(request: HttpRequest) -> bool:
    """Whether this session's user was authenticated by a full request lately and is still
    theirs (same auth hash), from the session and the cache alone: no query."""
    user_id = request.session.get(SESSION_KEY)
    session_hash = request.session.get(HASH_SESSION_KEY)
    if not user_id or not session_hash or cache_window.skipping():
        return False
    try:
        remembered = cache.get(VIEWER_KEY.format(user_id))
    except Exception:  # the cache away: the full path decides
        cache_window.failed("read")
        return False
    return isinstance(remembered, str) and constant_time_compare(remembered, session_hash)


def viewer_remember(request: HttpRequest) -> None:
    """After request.user was loaded and found active: remember them (viewer_known)."""
    user = request.user
    if not (user.is_authenticated and user.is_active) or cache_window.skipping():
        return
    try:
        cache.set(VIEWER_KEY.format(user.pk), user.get_session_auth_hash(), VIEWER_SECONDS)
    except Exception:  # the cache away: no fast path for now, the poll is answered
        cache_window.failed("written")


def viewer_forget(sender: object, instance: Any, **kwargs: object) -> None:
    """A user saved or deleted: their next poll loads them again."""
    with suppress(Exception):  # the cache away: remembered at most VIEWER_SECONDS
        cache.delete(VIEWER_KEY.format(instance.pk))
