"""The web's calls to the broker (inspect, revoke, queue lengths, health): each bounded, and
one error for "the task queue is unreachable" that pages and the API turn into a 503.

A stopped Redis refuses at once; a frozen one accepts connections and never answers, so
every command has a socket timeout and a failed call is retried once at most."""

from __future__ import annotations

import time
from typing import Any

from celery import current_app
from django.utils.translation import gettext_lazy

BROKER_CALL_TIMEOUT = 1.0
WEB_BROKER_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": BROKER_CALL_TIMEOUT,
    "socket_timeout": BROKER_CALL_TIMEOUT,
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}

BROKER_UNREACHABLE = gettext_lazy(
    "The task queue (broker) is unreachable: nothing was sent. Try again in a moment."
)


class BrokerUnavailable(Exception):
    """The broker could not be reached. `task_ids`: tasks that were not sent (their rows
    say so: FAILURE, retryable once the broker is back); `reason` a word (refused,
    timeout, error)."""

    def __init__(self, reason: str, task_ids: tuple[str, ...] = ()) -> None:
        super().__init__(reason, task_ids)
        self.reason = reason
        self.task_ids = task_ids


def broker_connection(app: Any = None) -> Any:
    """A broker connection for one short web-side call, every wait on it bounded."""
    app = app or current_app
    url = str(app.conf.broker_url or "")
    options = dict(WEB_BROKER_OPTIONS) if url.startswith(("redis://", "rediss://")) else {}
    return app.connection_for_write(connect_timeout=BROKER_CALL_TIMEOUT, transport_options=options)


def broker_errors() -> tuple[type[BaseException], ...]:
    """What a broker that is down or frozen raises (kombu wraps most; redis and sockets
    may get through)."""
    from kombu.exceptions import OperationalError

    errors: list[type[BaseException]] = [OperationalError, TimeoutError]
    try:
        import redis.exceptions

        errors += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:  # pragma: no cover - redis is installed with the redis transport
        pass
    return tuple(errors)


def failure_reason(exc: BaseException) -> str:
    """What failed, in a word, without the address or credentials an error may carry."""
    text = f"{type(exc).__name__} {exc}".lower()
    if "timeout" in text or "timed out" in text:
        return "timeout"
    if "refused" in text:
        return "refused"
    return "error"


class Circuit:
    """After a broker call failed, later ones of the same kind skip the broker for a while
    (a frozen Redis would otherwise cost each of them its timeout): open(reason) starts the
    spell, is_open() says whether it lasts, reason says what failed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.until = 0.0
        self.reason = ""

    def open(self, reason: str = "") -> None:
        self.until = time.monotonic() + self.seconds
        self.reason = reason

    def is_open(self) -> bool:
        return time.monotonic() < self.until


# The panel's reads (inspect, queue lengths): skipped this long after one failed.
panel_reads = Circuit(5.0)


def mark_broker_down() -> None:
    panel_reads.open()


def broker_recently_down() -> bool:
    return panel_reads.is_open()
