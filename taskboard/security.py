"""Browser-facing protections that come from no library: the Permissions-Policy header,
`Cache-Control: no-store` on what a logged-in user is shown, bidi-override characters taken
out of every page, and the login page's cool-down answer for django-axes."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from django.contrib.auth import SESSION_KEY
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_cache_control
from django.utils.translation import ngettext

# taskboard uses no powerful browser feature: none is granted, to the page or any frame.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
)

# Embeddings and overrides (U+202A–U+202E) and isolates (U+2066–U+2069), as UTF-8 bytes:
# user text (a label, a progress message, an exception) could otherwise reverse what
# follows it ("gpj.exe" shown as "exe.jpg"). Right-to-left scripts need none of them.
BIDI_CONTROLS = re.compile(rb"\xe2\x80[\xaa-\xae]|\xe2\x81[\xa6-\xa9]")
BIDI_CONTROL_CHARS = re.compile("[\u202a-\u202e\u2066-\u2069]")

PRIVATE_TYPES = ("text/html", "application/json")


def strip_bidi_controls(text: str) -> str:
    return BIDI_CONTROL_CHARS.sub("", text)


class SecurityHeadersMiddleware:
    """Permissions-Policy on every answer; for a logged-in user, HTML and JSON are never
    stored by the browser or a proxy (a shared computer's back button, a caching proxy);
    and no HTML page carries a bidi-override character."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        content_type = response.get("Content-Type", "")
        if content_type.startswith(PRIVATE_TYPES) and _logged_in(request):
            patch_cache_control(response, no_store=True)
        if (
            content_type.startswith("text/html")
            and not response.streaming
            and BIDI_CONTROLS.search(response.content)
        ):
            response.content = BIDI_CONTROLS.sub(b"", response.content)
        return response


def _logged_in(request: HttpRequest) -> bool:
    """From the session when it says so, not loading the user for this (an idle pulse
    answers without a query, views/polls.py); a session holding a stale user id only makes
    an answer no-store."""
    session = getattr(request, "session", None)
    if session is not None and session.get(SESSION_KEY):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated)


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any
) -> HttpResponse:
    """django-axes' answer to a locked-out login (AXES_LOCKOUT_CALLABLE): the login page
    again, saying why and for how long, with 429 and Retry-After."""
    from axes.helpers import get_cool_off  # axes reads its settings at import

    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds()) if cool_off is not None else 0
    minutes = max(1, math.ceil(seconds / 60))
    message = ngettext(
        "Too many failed login attempts. Logging in as this user from here is blocked for "
        "%(minutes)d minute; try again later or ask an administrator to unlock it.",
        "Too many failed login attempts. Logging in as this user from here is blocked for "
        "%(minutes)d minutes; try again later or ask an administrator to unlock it.",
        minutes,
    ) % {"minutes": minutes}
    username = credentials.get("username", "") if isinstance(credentials, dict) else ""
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "next": request.POST.get("next", request.GET.get("next", "")),
        "lockout": message,
    }
    response = render(request, "registration/login.html", context, status=429)
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
