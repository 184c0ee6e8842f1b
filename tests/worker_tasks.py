"""Tasks the test worker loads (`-I tests.worker_tasks`), plus a write counter.

The counter records every tracking write (taskboard's execution_changed signal) in Redis,
so tests can count the writes a real worker made.
"""

from __future__ import annotations

import os
import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

import redis
from celery import shared_task
from django.dispatch import receiver

from taskboard.signals import execution_changed
from taskboard.utils import report_progress, track_task

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


# --- Templates and retry (tests/services/test_launch.py, test_retry.py) -----------------

_runs: redis.Redis | None = None


def runs_key(name: str) -> str:
    return f"tbtest:runs:{name}"


@shared_task
def fails_first_time(name: str) -> str:
    """Fails on its first run for a given name (a Redis counter), succeeds afterwards: the
    cause is "fixed" once it has failed."""
    global _runs
    if _runs is None:
        _runs = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    runs = cast(int, _runs.incr(runs_key(name)))
    if runs == 1:
        raise RuntimeError(f"{name}: the first run fails")
    return f"{name}: run {runs}"


@shared_task(bind=True)
@track_task(
    "pruebas.informe",
    "pruebas",
    "Informe de prueba",
    description="A task of the test suite with one parameter of each kind.",
    default_kwargs={"copias": 2, "etiquetas": ["a"]},
)
def informe(
    self: Any,
    titulo: str,
    dia: date,
    copias: int = 1,
    escala: float = 1.5,
    importe: Decimal = Decimal("10.25"),
    urgente: bool = False,
    etiquetas: list[str] | None = None,
    opciones: dict[str, Any] | None = None,
    desde: datetime | None = None,
    user_id: int | None = None,
) -> dict[str, Any]:
    """Returns what it received, with the Python type of each value."""
    received = {
        "titulo": titulo,
        "dia": dia,
        "copias": copias,
        "escala": escala,
        "importe": importe,
        "urgente": urgente,
        "etiquetas": etiquetas,
        "opciones": opciones,
        "desde": desde,
        "user_id": user_id,
    }
    return {name: [type(value).__name__, str(value)] for name, value in received.items()}


@shared_task
def log_in_fails(username: str, password: str) -> None:
    """Always fails; called with a password, so its call is never kept."""
    raise PermissionError(f"{username} could not log in")


# --- Worker kills (tests/faults/test_worker_kills.py) -------------------------------------


@shared_task
def nap(seconds: float) -> float:
    """At most once: a worker that dies while it naps leaves it LOST."""
    time.sleep(seconds)
    return seconds


@shared_task
@track_task("pruebas.nap_again", "pruebas", "Siesta repetible", idempotent=True)
def nap_again(seconds: float) -> float:
    """Idempotent: acknowledged once finished, given back when its process dies."""
    time.sleep(seconds)
    return seconds


# --- Alerts (tests/services/test_alerts.py) ------------------------------------------------


@shared_task
@track_task("pruebas.nomina_falla", "nomina", "Nómina que falla")
def nomina_falla(periodo: int) -> None:
    """A payroll task that always fails."""
    raise RuntimeError(f"periodo {periodo}: faltan datos")


@shared_task
@track_task("pruebas.nomina_siesta", "nomina", "Nómina que duerme")
def nomina_siesta(seconds: float) -> float:
    """A payroll task that takes as long as it is told."""
    time.sleep(seconds)
    return seconds
