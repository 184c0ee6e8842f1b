"""Real services for the suite: a private redis-server and real Celery worker processes."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent

REDIS_HELP = (
    "The test suite needs a Redis server. Either install one so `redis-server` is on PATH "
    "(Debian/Ubuntu: `apt-get install redis-server`; macOS: `brew install redis`) and the "
    "suite starts its own private instance, or point TASKBOARD_TEST_REDIS_URL at a Redis "
    "you run (e.g. redis://127.0.0.1:6379/15)."
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def start_redis(tmp: Path) -> RedisServer:
    url = os.environ.get("TASKBOARD_TEST_REDIS_URL")
    if url:
        try:
            redis.Redis.from_url(url).ping()
        except redis.RedisError as exc:
            raise RuntimeError(f"TASKBOARD_TEST_REDIS_URL={url} does not answer: {exc}") from exc
        return RedisServer(url)
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(REDIS_HELP)
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
            "--logfile",
            str(tmp / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_until(answers, timeout=10)
    except TimeoutError:
        process.kill()
        raise RuntimeError(f"redis-server did not start on port {port}. {REDIS_HELP}") from None
    return RedisServer(url, process)


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for another process to reach the (test) database we are using."""
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    if engine.endswith("postgresql"):
        user = settings_dict.get("USER") or ""
        password = settings_dict.get("PASSWORD") or ""
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"
    raise RuntimeError(f"unsupported test database engine {engine}")


class LoggedProcess:
    """A service process of the suite, with its log file; SIGTERM stops it (then SIGKILL)."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass
class WorkerProcess(LoggedProcess):
    """A real `celery worker` (prefork pool) in its own process."""

    name: str
    queues: tuple[str, ...]
    process: subprocess.Popen[bytes]
    log_path: Path


def start_worker(
    app: Any,
    *,
    tmp: Path,
    broker_url: str,
    db_url: str,
    queues: tuple[str, ...] = ("celery",),
    concurrency: int = 2,
    extra_env: dict[str, str] | None = None,
    wait: bool = True,
    pool: str = "prefork",
    extra_args: tuple[str, ...] = (),
) -> WorkerProcess:
    name = f"tbtest-{uuid.uuid4().hex[:8]}@localhost"
    log_path = tmp / f"{name.split('@')[0]}.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sgm.settings",
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": broker_url,
        "CONN_MAX_AGE": "60",
        **(extra_env or {}),
    }
    command = [
        sys.executable, "-m", "celery", "-A", "sgm", "worker",
        "-P", pool, "-c", str(concurrency), "-n", name,
        "-Q", ",".join(queues), "-l", "INFO",
        "-I", "tests.worker_tasks,tests.external_app.facturacion",
        "--without-gossip", "--without-mingle", *extra_args,
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    worker = WorkerProcess(name, queues, process, log_path)
    if wait:
        try:
            wait_until(lambda: _answers_ping(app, worker), timeout=60, interval=0.2)
        except TimeoutError:
            worker.stop()
            raise RuntimeError(f"Celery worker did not start:\n{worker.log()[-4000:]}") from None
    return worker


def _answers_ping(app: Any, worker: WorkerProcess) -> bool:
    if worker.process.poll() is not None:
        raise RuntimeError(f"Celery worker exited:\n{worker.log()[-4000:]}")
    return bool(app.control.ping(destination=[worker.name], timeout=0.5))


FLOWER_HELP = (
    "The worker-panel tests run a real Flower. It is a test dependency: `make install` (or "
    "`pip install -e '.[dev]'`) installs it."
)


@dataclass
class FlowerProcess(LoggedProcess):
    """A real `celery flower` with basic auth, on a loopback port."""

    url: str
    user: str
    password: str
    process: subprocess.Popen[bytes]
    log_path: Path


def start_flower(*, tmp: Path, broker_url: str, user: str, password: str) -> FlowerProcess:
    if importlib.util.find_spec("flower") is None:
        raise RuntimeError(FLOWER_HELP)
    port = free_port()
    log_path = tmp / "flower.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sgm.settings",
        "PYTHONPATH": str(ROOT),
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": broker_url,
    }
    env.pop("FLOWER_UNAUTHENTICATED_API", None)
    command = [
        sys.executable, "-m", "celery", "-A", "sgm", "flower",
        "--address=127.0.0.1", f"--port={port}", f"--basic-auth={user}:{password}",
        "--inspect_timeout=1000", "--persistent=False",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    flower_process = FlowerProcess(f"http://127.0.0.1:{port}", user, password, process, log_path)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"Flower exited:\n{flower_process.log()[-4000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    try:
        wait_until(answers, timeout=30, interval=0.2)
    except TimeoutError:
        flower_process.stop()
        raise RuntimeError(f"Flower did not start:\n{flower_process.log()[-4000:]}") from None
    return flower_process


class HangingServer:
    """Accepts connections (the kernel completes the handshake) and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connecting is refused at once."""
    return f"http://127.0.0.1:{free_port()}"
