"""Redis (the broker and the cache) stopped for a spell, then frozen (SIGSTOP) for a spell,
with Flower trickling all along: every page, fragment and API endpoint answers below 500
and within 5 s, and /healthz says 503 naming the failing parts. A private redis-server, a
real threaded server (live_server), concurrent viewers signed in as staff.

Each spell lasts the issue's 30 s: many times every cache interval (5 s) and circuit
(3-5 s) involved, so every one of them expires and is retried during the outage."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from taskboard.models import TaskExecution, TaskNotification, TaskState, WorkerHeartbeat
from taskboard.services import launch
from taskboard.services.workers import broker as web_broker
from taskboard.tracking import sync_templates
from tests import worker_tasks  # noqa: F401  (declares the "pruebas.informe" template)
from tests.factories import client_for, make_execution
from tests.faults.fakes import PrivateRedis, TricklingFlower, celery_on, production_cache

SPELL = 30.0  # seconds of each outage, as in the issue
BOUND = 5.0  # no request over this, at any moment
HX = {"HX-Request": "true", "Accept-Language": "en"}


def surface(task_id: str, failed_id: str, failed_pk: int, notification_id: int) -> list[str]:
    """Every GET of taskboard/urls.py and taskboard/api/urls.py (the POSTs that publish or
    broadcast answer 503 by design while the broker is down: tests/faults/test_broker_down)."""
    return [
        reverse("taskboard:dashboard"),
        reverse("taskboard:list"),
        reverse("taskboard:stats"),
        reverse("taskboard:workers"),
        reverse("taskboard:module", args=["nomina"]),
        reverse("taskboard:notifications"),
        reverse("taskboard:bell"),
        reverse("taskboard:notification_preferences"),
        reverse("taskboard:templates"),
        reverse("taskboard:template_launch", args=["pruebas.informe"]),
        reverse("taskboard:bulk_confirm") + f"?action=retry&scope=selected&ids={failed_pk}",
        reverse("taskboard:detail", args=[task_id]),
        reverse("taskboard:detail", args=[failed_id]),
        reverse("taskboard:progress", args=[task_id]),
        reverse("taskboard_api:executions"),
        reverse("taskboard_api:user_tasks"),
        reverse("taskboard_api:workers"),
        reverse("taskboard_api:flower_info"),
        "/api/tasks/no-such-endpoint/",
        "/accounts/login/",
    ]


@pytest.fixture
def outage_setup(tmp_path, settings, monkeypatch, live_server, staff):
    server = PrivateRedis(tmp_path)
    settings.CACHES = {"default": production_cache(server.url)}
    trickle = TricklingFlower(interval=1.0)
    settings.FLOWER_URL = trickle.url
    settings.FLOWER_USER, settings.FLOWER_PASSWORD = "flower-admin", "secret"
    monkeypatch.setattr(launch.publishes, "until", 0.0)
    monkeypatch.setattr(web_broker.panel_reads, "until", 0.0)
    sync_templates()
    WorkerHeartbeat.objects.create(
        hostname="beating@localhost", last_seen=timezone.now(), concurrency=2, queues=["celery"]
    )
    running = make_execution(state=TaskState.PROGRESS, user=staff, progress=40)
    failed = make_execution(state=TaskState.FAILURE, user=staff)
    note = TaskNotification.objects.create(user=staff, execution=failed, message="failed")
    urls = surface(running.task_id, failed.task_id, failed.pk, note.pk)
    cookies = {"sessionid": client_for(staff).cookies["sessionid"].value}
    with celery_on(server.url):
        yield server, live_server.url, urls, cookies
    trickle.close()
    server.stop()


def hammer(base: str, urls: list[str], cookies: dict[str, str], seconds: float) -> list[Any]:
    """Four viewers going round the whole surface for `seconds`, and on until every
    endpoint was asked once (within a deadline: a slow machine must not shorten the
    round); every answer's (url, status, seconds)."""
    until = time.monotonic() + seconds
    deadline = until + 60
    asked: set[str] = set()

    def going_on() -> bool:
        now = time.monotonic()
        return now < until or (len(asked) < len(set(urls)) and now < deadline)

    def viewer(offset: int) -> list[Any]:
        seen = []
        session = requests.Session()
        session.cookies.update(cookies)
        i = offset
        while going_on():
            url = urls[i % len(urls)]
            i += 1
            started = time.monotonic()
            status: int | str
            try:
                status = session.get(base + url, headers=HX, timeout=30).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            seen.append((url, status, round(time.monotonic() - started, 2)))
            asked.add(url)
        return seen

    with ThreadPoolExecutor(max_workers=4) as pool:
        return [answer for seen in pool.map(viewer, range(0, 20, 5)) for answer in seen]


def healthz(base: str) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    response = requests.get(base + "/healthz", timeout=30)
    return response.status_code, response.json(), time.monotonic() - started


def check(answers: list[Any], urls: list[str], label: str) -> None:
    bad = [a for a in answers if not isinstance(a[1], int) or a[1] >= 500 or a[2] >= BOUND]
    assert not bad, f"{label}: {bad[:20]}"
    assert {a[0] for a in answers} == set(urls), f"{label}: not every endpoint was asked"
    slowest = max(answers, key=lambda a: a[2])
    print(f"{label}: {len(answers)} requests, none >= 500, slowest {slowest}")


def during(fault: Callable[[], None], heal: Callable[[], None], body: Callable[[], None]) -> None:
    fault()
    try:
        body()
    finally:
        heal()


def test_redis_stopped_then_frozen_with_flower_trickling(outage_setup):
    server, base, urls, cookies = outage_setup
    status, body, _ = healthz(base)
    assert status == 200 and body["broker"] == "ok" and body["cache"] == "ok", body

    def outage(label: str) -> Callable[[], None]:
        def body() -> None:
            status, health, took = healthz(base)
            assert status == 503 and took < BOUND, (health, took)
            assert health["broker"] == "error" and health["cache"] == "error", health
            assert health["database"] == "ok" and set(health["detail"]) == {"broker", "cache"}
            check(hammer(base, urls, cookies, SPELL), urls, label)

        return body

    during(server.stop, server.start, outage("stopped"))
    check(hammer(base, urls, cookies, 3.0), urls, "after the restart")
    during(server.freeze, server.thaw, outage("frozen"))
    check(hammer(base, urls, cookies, 3.0), urls, "after the thaw")
    status, body, _ = healthz(base)
    assert status == 200, body
    assert not TaskExecution.objects.filter(state=TaskState.PENDING).exists()
