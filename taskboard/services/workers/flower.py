"""FlowerService: Flower 2.x's HTTP API, with short timeouts and errors that say what failed."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from django.utils.translation import gettext as _

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


class FlowerService:
    """One Flower instance: base URL, basic auth, (connect, read) timeouts."""

    def __init__(
        self,
        base_url: str,
        *,
        user: str = "",
        password: str = "",
        timeout: tuple[float, float] = (1.0, 3.0),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
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
        )

    @property
    def url(self) -> str:
        return public_url(self.base_url)

    def _request(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            response = self.session.request(
                method, self.base_url + path, params=params, timeout=self.timeout
            )
        except requests.Timeout as exc:
            raise FlowerTimeout(str(exc)) from exc
        except requests.ConnectionError as exc:
            raise FlowerUnreachable(_reason(exc)) from exc
        except requests.RequestException as exc:
            raise FlowerError(str(exc)) from exc
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
