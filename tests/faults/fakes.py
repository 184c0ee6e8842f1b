"""Fakes and private services for the fault tests: a Flower on a local socket that answers
one byte every `interval` seconds (a per-read timeout never fires, only a total deadline
cuts it off), and a private redis-server to stop and freeze."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from tests.processes import REDIS_HELP, free_port, wait_until

ANSWER = (
    b"HTTP/1.1 200 OK\r\nServer: TornadoServer/6.4\r\nContent-Type: application/json\r\n"
    b"Content-Length: 60\r\n\r\n" + b'{"trickle@localhost": {"stats": {}, "active_queues": []}}   '
)


class TricklingFlower:
    """Accepts every connection, reads the request, then sends ANSWER one byte at a time.
    `connections` counts the requests it took; `open_connections` those still being fed."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self.open_connections = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._feed, args=(conn,), daemon=True).start()

    def _feed(self, conn: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            self.open_connections += 1
        try:
            conn.settimeout(5)
            conn.recv(65536)  # the request (small: one GET)
            for byte in ANSWER:
                if self._closed.wait(self.interval):
                    return
                conn.sendall(bytes([byte]))
        except OSError:
            pass  # the client gave up and closed: what a deadline does
        finally:
            with self._lock:
                self.open_connections -= 1
            conn.close()

    def close(self) -> None:
        self._closed.set()
        self.sock.close()


class PrivateRedis:
    """A redis-server of the test's own on a fixed port, that can be stopped, started again
    on the same port, frozen (SIGSTOP) and thawed (SIGCONT)."""

    def __init__(self, tmp: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(REDIS_HELP)
        self.binary, self.tmp, self.port = binary, tmp, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(answers, timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)  # a frozen one cannot exit
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def freeze(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)


@contextmanager
def celery_on(url: str) -> Iterator[None]:
    """Publish and broadcast through `url` with the production transport options (the
    suite's conftest clears them), on fresh connection pools."""
    from sgm.celery import app
    from sgm.settings import broker_transport_options

    before = (app.conf.broker_url, app.conf.broker_transport_options)

    def fresh_pools() -> None:
        app.close()
        app.amqp._producer_pool = None  # type: ignore[attr-defined]

    app.conf.update(broker_url=url, broker_transport_options=broker_transport_options(url))
    fresh_pools()
    try:
        yield
    finally:
        app.conf.update(broker_url=before[0], broker_transport_options=before[1])
        fresh_pools()


def production_cache(url: str) -> dict[str, Any]:
    """sgm.settings.cache_config() for a Redis at url (its timeouts included)."""
    import sgm.settings

    saved = os.environ.get("CACHE_URL")
    os.environ["CACHE_URL"] = url
    try:
        config = sgm.settings.cache_config()
    finally:
        if saved is None:
            del os.environ["CACHE_URL"]
        else:
            os.environ["CACHE_URL"] = saved
    assert config["OPTIONS"]["socket_timeout"] <= 1.0
    return {**config, "KEY_PREFIX": "tbfault"}
