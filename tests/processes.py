"""Real services for the suite: a private redis-server and real Celery worker processes."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
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
    name: str | None = None,
    pool: str = "prefork",
    extra_args: tuple[str, ...] = (),
) -> WorkerProcess:
    name = name or f"tbtest-{uuid.uuid4().hex[:8]}@localhost"
    log_path = tmp / f"{name.split('@')[0]}.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sgm.settings",
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": broker_url,
        # The test process's cache is this Redis with this prefix (conftest.py): the worker
        # shares it, as production's do (the change stamp a poll compares, single flights).
        "CACHE_KEY_PREFIX": "tbtest",
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


POSTGRES_BIN = Path(os.environ.get("TASKBOARD_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
POSTGRES_HELP = (
    "The database fault tests start a private PostgreSQL cluster (and stop it to cause the "
    "outage): they need PostgreSQL's server binaries `initdb` and `pg_ctl` in "
    f"{POSTGRES_BIN} (Debian/Ubuntu: `apt-get install postgresql-15`), or "
    "TASKBOARD_TEST_PG_BIN naming the folder that holds them, and, when run as root, the "
    "user `postgres` and `runuser` to run them as."
)


@dataclass
class PostgresCluster:
    """A private PostgreSQL cluster in a tmp folder, on its own port (trust, user postgres,
    database `taskboard`). stop() is a real outage (pg_ctl stop -m fast: the server ends
    every session); start() brings the same cluster, data and port back."""

    data_dir: Path
    port: int
    log_path: Path
    as_postgres: tuple[str, ...]

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/taskboard"

    def _pg_ctl(self, *args: str) -> None:
        command = [*self.as_postgres, str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data_dir)]
        result = subprocess.run(
            [*command, "-l", str(self.log_path), "-w", "-t", "60", *args],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"pg_ctl {' '.join(args)} failed: {result.stdout}{result.stderr}\n{self.log()}"
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def start(self) -> None:
        self._pg_ctl("start", "-o", f"-p {self.port} -k {self.data_dir} -h 127.0.0.1")

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "fast")

    def migrate(self) -> None:
        """manage.py migrate, in a process of its own, as a deployment would."""
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "sgm.settings", "DATABASE_URL": self.url}
        result = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input"],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{result.stdout}{result.stderr}")

    def connect(self) -> Any:
        """A direct psycopg connection (autocommit), to read what landed."""
        import psycopg

        return psycopg.connect(self.url, autocommit=True)

    @contextlib.contextmanager
    def as_default_database(self) -> Iterator[None]:
        """This process's `default` database is the cluster meanwhile, in every thread: the
        settings dict every thread's connection is made from is changed in place (and the
        current thread's connection replaced), then put back. Stop the tracking buffer's
        thread before and after, so it holds no connection across the change."""
        from django.db import connections

        old = connections["default"]
        settings_dict = old.settings_dict
        saved = dict(settings_dict)
        old.close()
        settings_dict.update(
            ENGINE="django.db.backends.postgresql", NAME="taskboard", USER="postgres",
            PASSWORD="", HOST="127.0.0.1", PORT=str(self.port), CONN_MAX_AGE=0,
            OPTIONS={"connect_timeout": 5},
        )  # fmt: skip
        connections["default"] = connections.create_connection("default")
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                connections["default"].close()
            settings_dict.clear()
            settings_dict.update(saved)
            connections["default"] = old

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def start_postgres(tmp: Path) -> PostgresCluster:
    """initdb + pg_ctl start a private cluster under tmp, with a database `taskboard`."""
    for binary in ("initdb", "pg_ctl", "postgres"):
        if not (POSTGRES_BIN / binary).exists():
            raise RuntimeError(f"{POSTGRES_BIN / binary} is missing. {POSTGRES_HELP}")
    as_postgres: tuple[str, ...] = ()
    if os.geteuid() == 0:  # the server refuses to run as root
        if shutil.which("runuser") is None:
            raise RuntimeError(f"runuser is missing. {POSTGRES_HELP}")
        as_postgres = ("runuser", "-u", "postgres", "--")
    # A folder the user postgres can reach and write: pytest's tmp folders are private to
    # root (0700), so the cluster lives in the system's temp folder; tmp keeps a link to it.
    home = Path(tempfile.mkdtemp(prefix="taskboard-pg-"))
    home.chmod(0o777)
    with contextlib.suppress(OSError):
        (tmp / "postgres").symlink_to(home)
    data_dir = home / "data"
    cluster = PostgresCluster(data_dir, free_port(), home / "postgres.log", as_postgres)
    result = subprocess.run(
        [*as_postgres, str(POSTGRES_BIN / "initdb"), "-D", str(data_dir), "-U", "postgres",
         "-A", "trust", "-E", "UTF8", "--no-sync"],
        capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"initdb failed: {result.stdout}{result.stderr}\n{POSTGRES_HELP}")
    with open(data_dir / "postgresql.conf", "a") as conf:
        conf.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
    cluster.start()
    import psycopg

    with psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres", autocommit=True
    ) as conn:
        conn.execute("CREATE DATABASE taskboard")
    return cluster


@contextlib.contextmanager
def migrated_postgres(tmp: Path) -> Iterator[PostgresCluster]:
    """A private cluster, migrated, destroyed afterwards; a missing PostgreSQL fails the
    test with start_postgres's message (how to get it), not a traceback."""
    import pytest

    try:
        server = start_postgres(tmp)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        server.migrate()
        yield server
    finally:
        server.destroy()
