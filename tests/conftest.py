from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.cache import cache
from django.db import connection
from django.test import override_settings

from sgm.celery import app as celery_app
from tests.browser import browser_page
from tests.factories import make_user
from tests.processes import (
    FlowerProcess,
    RedisServer,
    WorkerProcess,
    database_url,
    start_flower,
    start_redis,
    start_worker,
    wait_until,
)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    try:
        server = start_redis(tmp_path_factory.mktemp("redis"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def celery_on_test_redis(redis_server: RedisServer) -> Iterator[str]:
    """Publish to the suite's own Redis, never to whatever the settings name."""
    celery_app.conf.update(
        broker_url=redis_server.url,
        result_backend=redis_server.url,
        broker_transport_options={},
    )
    # The cache every web process shares (single-flight worker fetches) is Redis in
    # production: the suite's own Redis here.
    shared_cache = override_settings(
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_server.url,
                "KEY_PREFIX": "tbtest",
            }
        }
    )
    shared_cache.enable()
    yield redis_server.url
    shared_cache.disable()


@pytest.fixture(autouse=True)
def fresh_worker_cache(celery_on_test_redis: str) -> None:
    """Each test fetches workers anew instead of seeing the previous test's snapshot."""
    from taskboard import sessions
    from taskboard.services.workers import FLOWER_INFO_KEY, WORKERS_KEY
    from taskboard.tracking import stamps

    # (the module: the package re-exports a function of the same name)
    single_flight = importlib.import_module("taskboard.services.workers.single_flight")

    # A cache failure an earlier test caused (on purpose) switches this process to its own
    # store for a few seconds: no test starts inside that spell.
    single_flight.cache_window.close()
    stamps.cache_window.close()
    sessions.cache_window.close()
    cache.delete_many([WORKERS_KEY, FLOWER_INFO_KEY, f"{WORKERS_KEY}:lock"])
    # Each test starts with a fresh launch-rate window (the suite launches as the same
    # users many times a minute; tests of the limit itself count from zero).
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    launches = list(client.scan_iter(match="*taskboard:launches:*"))
    if launches:
        client.delete(*launches)


@pytest.fixture(scope="session", autouse=True)
def flushing_thread_stopped(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """The tracking buffer's thread holds a connection: let go of it before the test
    database is dropped."""
    yield
    from taskboard.tracking.recorder import buffer

    with django_db_blocker.unblock():
        buffer.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(redis_server.url, decode_responses=True)


@pytest.fixture(scope="session")
def worker_mail_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's worker writes the e-mails it sends (Django's file backend)."""
    return tmp_path_factory.mktemp("worker-mail")


@pytest.fixture(scope="session")
def worker_process(
    django_db_setup: None,
    django_db_blocker: Any,
    redis_server: RedisServer,
    worker_mail_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    """One real worker (prefork, 2 processes) on the test database, for the session."""
    with django_db_blocker.unblock():
        db_url = database_url(connection.settings_dict)
    worker = start_worker(
        celery_app,
        tmp=tmp_path_factory.mktemp("worker"),
        broker_url=redis_server.url,
        db_url=db_url,
        queues=("celery",),
        extra_env={
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(worker_mail_dir),
        },
    )
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def flower(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FlowerProcess]:
    """A real Flower with basic auth, watching the suite's Redis."""
    try:
        process = start_flower(
            tmp=tmp_path_factory.mktemp("flower"),
            broker_url=redis_server.url,
            user="flower-admin",
            password="flower-secret-1",
        )
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield process
    process.stop()


@pytest.fixture
def spawn_worker(
    transactional_db: None, redis_server: RedisServer, tmp_path: Any
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start extra workers of the test's own (on the test database); all stopped after."""
    started: list[WorkerProcess] = []

    def spawn(**options: Any) -> WorkerProcess:
        process = start_worker(
            celery_app,
            tmp=tmp_path,
            broker_url=redis_server.url,
            db_url=database_url(connection.settings_dict),
            **options,
        )
        started.append(process)
        return process

    yield spawn
    for process in started:
        process.stop()


@pytest.fixture
def worker(
    transactional_db: None, worker_process: WorkerProcess, redis_client: redis.Redis
) -> Iterator[WorkerProcess]:
    """The session's worker, for a test whose rows it must see (so: committed rows)."""
    yield worker_process
    # Leave no task of this test behind for the next one.
    celery_app.control.purge()
    wait_until(lambda: not _busy(worker_process), timeout=30)


def _busy(worker: WorkerProcess) -> bool:
    active = celery_app.control.inspect(destination=[worker.name], timeout=1).active() or {}
    return any(active.values())


@pytest.fixture
def ana(db: None) -> Any:
    return make_user("ana")


@pytest.fixture
def other(db: None) -> Any:
    return make_user("otro")


@pytest.fixture
def staff(db: None) -> Any:
    return make_user("jefa", staff=True)


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real Chromium page (tests/browser.py); fails, never skips, without the browser."""
    yield from browser_page(monkeypatch)
