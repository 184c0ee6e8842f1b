"""/healthz: is this web process able to serve? Database, broker and cache: 200, or 503
naming the part that fails, within a bounded time (a frozen Redis accepts connections and
never answers: every probe has its timeout), and never a secret (no address, no password).

The answer: {"status": "ok"|"error", "database": ..., "broker": ..., "cache": ...}, each
part "ok" or "error", "detail" (what went wrong, by part) when one fails, and "writes": this
process's tracking write buffer (pending, retried, spilled, replayed, dropped, outages,
database_away; see taskboard.tracking.recorder). Workers log the same counters."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core.cache import caches
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

PATH = "/healthz"
BROKER_TIMEOUT = 1.0
CACHE_KEY = "taskboard:healthz"

Probe = Callable[[], None]


def database_ok() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone() != (1,):
            raise RuntimeError("unexpected answer")


def broker_ok() -> None:
    from sgm.celery import app
    from taskboard.services.workers.broker import broker_connection

    with broker_connection(app) as conn:
        conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT)
        client = getattr(conn.default_channel, "client", None)
        if client is not None and hasattr(client, "ping"):
            client.ping()  # connecting proves little: a frozen Redis still accepts


def cache_ok() -> None:
    from taskboard.conf import conf

    caches[conf.CACHE_ALIAS].get(CACHE_KEY)


def _run(name: str, probe: Probe) -> str | None:
    try:
        probe()
    except Exception as exc:
        logger.warning("health: the %s does not answer", name, exc_info=True)
        from taskboard.services.workers.broker import failure_reason

        return failure_reason(exc)
    return None


def healthz(request: HttpRequest) -> HttpResponse:
    # The broker and the cache are asked at once (each bounded); the database here, in
    # this thread, on this request's connection.
    with ThreadPoolExecutor(max_workers=2) as pool:
        broker = pool.submit(_run, "broker", broker_ok)
        cache = pool.submit(_run, "cache", cache_ok)
        database = _run("database", database_ok)
        failures = {"database": database, "broker": broker.result(), "cache": cache.result()}
    healthy = not any(failures.values())
    body: dict[str, Any] = {"status": "ok" if healthy else "error"}
    body.update({name: "error" if reason else "ok" for name, reason in failures.items()})
    if not healthy:
        body["detail"] = {name: reason for name, reason in failures.items() if reason}
    from taskboard.tracking.recorder import buffer

    body["writes"] = buffer.counters()
    response = JsonResponse(body, status=200 if healthy else 503)
    response["Cache-Control"] = "no-store"
    return response


class HealthCheckMiddleware:
    """Answers /healthz first: a container's health probe comes over plain HTTP to
    localhost, which host validation and the HTTPS redirect would otherwise refuse."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == PATH and request.method in ("GET", "HEAD"):
            return healthz(request)
        return self.get_response(request)
