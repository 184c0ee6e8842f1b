"""FlowerService: Flower 2.x's HTTP API, with short timeouts and errors that say what failed.

Every call has a total wall-clock deadline, not only requests' (connect, read) timeouts: a
Flower that sends one byte every second never trips a per-read timeout, so at the deadline
a watchdog shuts the call's socket down and the call fails as FlowerTimeout.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from django.utils.translation import gettext as _
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from taskboard.conf import conf


class FlowerError(Exception):
    """Flower could not answer. `code` names the fault for machines; str() for people."""

    code = "error"


class FlowerUnreachable(FlowerError):
    code = "unreachable"


class FlowerTimeout(FlowerError):
    code = "timeout"


class FlowerAuthError(FlowerError):
    code = "auth"


class FlowerBadResponse(FlowerError):
    code = "bad_response"


def public_url(url: str) -> str:
    """The URL without any user:password it may carry."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# --- The deadline: the connections a call uses, shut down when its time is up -------------

_calling = threading.local()  # .connections: the connections of this thread's current call


class _TrackedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        connections = getattr(_calling, "connections", None)
        if connections is not None:
            connections.append(self)
        super().request(*args, **kwargs)


class _TrackedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        connections = getattr(_calling, "connections", None)
        if connections is not None:
            connections.append(self)
        super().request(*args, **kwargs)


class _TrackedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections say which call uses them."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _TrackedHTTPPool,
            "https": _TrackedHTTPSPool,
        }


def _cut(connections: list[HTTPConnection], fired: threading.Event) -> None:
    fired.set()
    for connection in connections:
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read: it sees EOF


class FlowerService:
    """One Flower instance: base URL, basic auth, (connect, read) timeouts, and a total
    deadline for each call (and, within `deadline()`, for a sequence of calls)."""

    def __init__(
        self,
        base_url: str,
        *,
        user: str = "",
        password: str = "",
        timeout: tuple[float, float] = (1.0, 3.0),
        total: float = 2.5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.total = total
        self._until: float | None = None  # a sequence's deadline (monotonic)
        self.session = requests.Session()
        adapter = _DeadlineAdapter()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        if user or password:
            self.session.auth = (user, password)
        self.session.headers["Accept"] = "application/json"
        self.server = ""  # Flower's Server header, from the last answer

    @classmethod
    def from_settings(cls) -> FlowerService | None:
        """The configured Flower, or None when FLOWER_URL is not set."""
        if not conf.FLOWER_URL:
            return None
        return cls(
            conf.FLOWER_URL,
            user=conf.FLOWER_USER,
            password=conf.FLOWER_PASSWORD,
            timeout=conf.FLOWER_TIMEOUT,
            total=conf.FLOWER_DEADLINE,
        )

    @property
    def url(self) -> str:
        return public_url(self.base_url)

    @contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Every call inside ends within `seconds` from now, all of them together."""
        previous = self._until
        self._until = time.monotonic() + seconds
        try:
            yield
        finally:
            self._until = previous

    def _request(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
        now = time.monotonic()
        until = now + self.total
        if self._until is not None:
            until = min(until, self._until)
        remaining = until - now
        if remaining <= 0:
            raise FlowerTimeout(_("no time left to ask Flower"))
        connect, read = self.timeout
        timeout = (min(connect, remaining), min(read, remaining))
        connections: list[HTTPConnection] = []
        fired = threading.Event()
        watchdog = threading.Timer(remaining, _cut, (connections, fired))
        watchdog.daemon = True
        _calling.connections = connections
        watchdog.start()
        try:
            response = self.session.request(
                method, self.base_url + path, params=params, timeout=timeout
            )
        except requests.RequestException as exc:
            if fired.is_set():
                raise FlowerTimeout(_("no complete answer in time")) from exc
            if isinstance(exc, requests.Timeout):
                raise FlowerTimeout(str(exc)) from exc
            if isinstance(exc, requests.ConnectionError):
                raise FlowerUnreachable(_reason(exc)) from exc
            raise FlowerError(str(exc)) from exc
        finally:
            watchdog.cancel()
            _calling.connections = None
            if fired.is_set():  # its sockets are shut: none goes back to the pool
                self.session.close()
        self.server = response.headers.get("Server", "")
        if response.status_code in (401, 403):
            raise FlowerAuthError(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise FlowerBadResponse(f"HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise FlowerBadResponse(_("not JSON")) from exc

    def workers(self, *, refresh: bool = True, name: str | None = None) -> dict[str, Any]:
        """GET /api/workers: {worker name: {stats, active_queues, [active], ...}}.

        Flower sends the task lists (active, reserved) only when asked for one worker."""
        params: dict[str, Any] = {}
        if refresh:
            params["refresh"] = 1
        if name:
            params["workername"] = name
        data = self._request("GET", "/api/workers", params)
        if not isinstance(data, dict):
            raise FlowerBadResponse(_("unexpected workers answer"))
        return data

    def worker_status(self) -> dict[str, bool]:
        """GET /api/workers?status=1: {worker name: alive}, from Flower's event stream."""
        data = self._request("GET", "/api/workers", {"status": 1})
        if not isinstance(data, dict):
            raise FlowerBadResponse(_("unexpected workers answer"))
        return {str(name): bool(alive) for name, alive in data.items()}

    def queue_lengths(self) -> dict[str, int]:
        """GET /api/queues/length: {queue name: messages waiting}."""
        data = self._request("GET", "/api/queues/length")
        queues = data.get("active_queues", []) if isinstance(data, dict) else []
        return {
            str(queue["name"]): int(queue.get("messages") or 0)
            for queue in queues
            if isinstance(queue, dict) and "name" in queue
        }

    def task_info(self, task_id: str) -> dict[str, Any]:
        """GET /api/task/info/<id>: Flower's view of one task (from its event stream)."""
        data = self._request("GET", f"/api/task/info/{quote(task_id, safe='')}")
        if not isinstance(data, dict):
            raise FlowerBadResponse(_("unexpected task answer"))
        return data

    def revoke(self, task_id: str, *, terminate: bool = False) -> None:
        """POST /api/task/revoke/<id>; terminate kills the task if it is running."""
        params = {"terminate": "true" if terminate else "false"}
        self._request("POST", f"/api/task/revoke/{quote(task_id, safe='')}", params)


def _reason(exc: requests.ConnectionError) -> str:
    """The innermost cause ('Connection refused'), not urllib3's paragraph."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return str(cause.strerror)
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    return "Connection refused" if "refused" in text.lower() else text[:200]
