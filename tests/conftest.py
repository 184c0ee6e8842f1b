from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.db import connection

from sgm.celery import app as celery_app
from tests.factories import make_user
from tests.services import (
    RedisServer,
    WorkerProcess,
    database_url,
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
    yield redis_server.url


@pytest.fixture(scope="session", autouse=True)
def flushing_thread_stopped(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """The tracking buffer's thread holds a connection: let go of it before the test
    database is dropped."""
    yield
    from taskboard.recorder import buffer

    with django_db_blocker.unblock():
        buffer.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(redis_server.url, decode_responses=True)


@pytest.fixture(scope="session")
def worker_process(
    django_db_setup: None,
    django_db_blocker: Any,
    redis_server: RedisServer,
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
    )
    yield worker
    worker.stop()


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
