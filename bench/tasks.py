"""The benchmark's task, and how its completion is counted.

Every mode counts finished tasks the same way: a ``task_postrun`` handler increments a
Redis counter (``BENCH_REDIS_URL``, key ``BENCH_COUNTER_KEY``), so the benchmark needs no
result backend to know when all tasks ran. ``task_postrun`` is sent after the result
backend stored the result and after every ``task_success`` handler (taskboard's final
write), so each mode's own durable work is inside the timed interval.
"""

from __future__ import annotations

import os
from typing import Any, cast

import redis
from celery import shared_task
from celery.signals import task_postrun

COUNTER_KEY = os.environ.get("BENCH_COUNTER_KEY", "taskboard-bench:done")

_client: redis.Redis | None = None


def counter() -> redis.Redis:
    """One client per process, created lazily (so after the prefork pool forked)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1"))
    return _client


def reset_count() -> None:
    counter().set(COUNTER_KEY, 0)


def finished_count() -> int:
    return int(cast("bytes | None", counter().get(COUNTER_KEY)) or 0)


@shared_task(name="bench.tasks.noop")
def noop() -> None:
    return None


@task_postrun.connect(weak=False, dispatch_uid="bench.count_done")
def count_done(sender: Any = None, **_: Any) -> None:
    if getattr(sender, "name", None) == "bench.tasks.noop":
        counter().incr(COUNTER_KEY)
