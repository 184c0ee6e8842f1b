"""Tasks the test worker loads (`-I tests.worker_tasks`), plus a write counter.

The counter records every tracking write (taskboard's execution_changed signal) in Redis,
so tests can count the writes a real worker made.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import shared_task
from django.dispatch import receiver

from taskboard.signals import execution_changed
from taskboard.utils import report_progress

_counter: redis.Redis | None = None


def write_counter_key(task_id: str, state: str | None) -> str:
    return f"tbtest:writes:{task_id}:{state or 'FIELDS'}"


@receiver(execution_changed, dispatch_uid="tests.count_writes")
def count_writes(sender: Any, lookup: tuple[str, Any], state: str | None, **kwargs: Any) -> None:
    global _counter
    url = os.environ.get("CELERY_BROKER_URL", "")
    if lookup[0] != "task_id" or not url.startswith("redis://"):
        return
    if _counter is None:
        _counter = redis.Redis.from_url(url)
    _counter.incr(write_counter_key(lookup[1], state))


@shared_task
def add(x: int, y: int) -> int:
    return x + y


@shared_task(bind=True)
def progress_steps(self: Any, steps: int, pause: float) -> int:
    for step in range(1, steps + 1):
        time.sleep(pause)
        report_progress(step, steps, f"step {step} of {steps}")
    return steps


@shared_task(bind=True)
def progress_then_wait(self: Any, wait: float) -> str:
    for percent in (10, 20, 30, 40, 50):
        report_progress(percent, 100, f"at {percent}")
    time.sleep(wait)
    return "done"


@shared_task
def sign_in(username: str, password: str, options: dict[str, Any] | None = None) -> str:
    return f"signed in {username}"


@shared_task(bind=True)
def spawn_child(self: Any) -> str:
    return str(add.delay(20, 22).id)
