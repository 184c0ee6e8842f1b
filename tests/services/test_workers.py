"""The worker panel and its sources: heartbeats, a real Flower, Celery's inspect()."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import redis
import requests
from celery import Celery
from django.core.cache import caches
from django.urls import reverse
from django.utils import timezone

from sgm.celery import app as celery_app
from taskboard.conf import conf
from taskboard.models import RUNNING_STATES, TaskExecution, TaskState, WorkerHeartbeat
from taskboard.services.cancel import TaskManager
from taskboard.services.workers import (
    WORKERS_KEY,
    HeartbeatSource,
    InspectSource,
    SourceUnavailable,
    WorkerRecord,
    fetch_flower_info,
    fetch_snapshot,
    workers_snapshot,
)
from taskboard.services.workers.flower import (
    FlowerAuthError,
    FlowerBadResponse,
    FlowerService,
    FlowerUnreachable,
)
from tests.factories import client_for, make_execution
from tests.processes import (
    HangingServer,
    closed_port_url,
    wait_until,
)
from tests.worker_tasks import add, progress_then_wait

HX = {"HX-Request": "true"}
EN = {"Accept-Language": "en"}


def heartbeat_of(name: str) -> WorkerRecord | None:
    try:
        workers, _ = HeartbeatSource().fetch()
    except SourceUnavailable:
        return None
    return next((worker for worker in workers if worker.name == name), None)


def fresh_heartbeat(hostname: str = "beating@localhost", **fields) -> WorkerHeartbeat:
    return WorkerHeartbeat.objects.create(
        hostname=hostname, last_seen=timezone.now(), concurrency=4, queues=["celery"], **fields
    )


def flower_service() -> FlowerService:
    service = FlowerService.from_settings()
    assert service is not None
    return service


# --- Heartbeats ---------------------------------------------------------------------------


def test_started_worker_is_online_within_5s_and_offline_once_stopped(spawn_worker):
    worker = spawn_worker()
    online = wait_until(
        lambda: (record := heartbeat_of(worker.name)) and record.online and record, timeout=5
    )
    assert online.concurrency == 2 and online.queues == ("celery",)
    assert online.loadavg is not None and len(online.loadavg) == 3
    worker.stop()
    # A worker that stops says so: offline at once, not after the threshold.
    record = heartbeat_of(worker.name)
    assert record is not None and not record.online


def test_killed_worker_goes_offline_after_the_threshold(spawn_worker, settings):
    settings.TASKBOARD_WORKER_OFFLINE_AFTER = 3
    worker = spawn_worker()
    wait_until(lambda: (record := heartbeat_of(worker.name)) and record.online, timeout=5)
    worker.process.send_signal(signal.SIGKILL)  # no goodbye: only the silence tells
    worker.process.wait(timeout=10)
    killed_at = time.monotonic()
    wait_until(lambda: not getattr(heartbeat_of(worker.name), "online", True), timeout=5.5)
    assert time.monotonic() - killed_at > 0.5  # it stayed online until it went silent


def test_heartbeats_list_the_running_task(worker, ana):
    running = progress_then_wait.delay(4)
    record = wait_until(
        lambda: (
            (record := heartbeat_of(worker.name))
            and any(task.task_id == running.id for task in record.active)
            and record
        ),
        timeout=8,
    )
    assert [task.name for task in record.active] == ["tests.worker_tasks.progress_then_wait"]
    running.revoke(terminate=True)


# --- The panel ------------------------------------------------------------------------------


def test_panel_links_active_tasks_and_greys_offline_workers(
    db, staff, django_assert_max_num_queries
):
    fresh_heartbeat(active=[{"id": "abc-123", "name": "sgm.nomina.tasks.consolidar_nomina"}])
    WorkerHeartbeat.objects.create(
        hostname="gone@localhost", last_seen=timezone.now() - timedelta(hours=1)
    )
    client = client_for(staff)
    with django_assert_max_num_queries(3):
        response = client.get(reverse("taskboard:workers"), headers={**HX, **EN})
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert 'data-source="heartbeats"' in html and "Shown from worker heartbeats." in html
    assert '<tr class="online" data-worker="beating@localhost">' in html
    assert '<tr class="offline" data-worker="gone@localhost">' in html
    assert f'href="{reverse("taskboard:detail", args=["abc-123"])}"' in html
    assert 'data-queue="celery"' in html  # the broker's count for the queue the worker reads


def test_users_see_their_own_active_tasks_and_a_count_of_the_rest(
    db, ana, other, staff, django_assert_max_num_queries
):
    mine = make_execution(user=ana, state=TaskState.PROGRESS)
    theirs = make_execution(user=other, state=TaskState.PROGRESS)
    active = [{"id": e.task_id, "name": e.task_name} for e in (mine, theirs)]
    fresh_heartbeat(active=active)
    client = client_for(ana)
    with django_assert_max_num_queries(4):
        response = client.get(reverse("taskboard:workers"), headers={**HX, **EN})
    html = response.content.decode()
    assert mine.task_id in html and theirs.task_id not in html
    assert "1 task of other users" in html
    api = client_for(ana).get("/api/tasks/workers/").json()["workers"][0]
    assert [t["task_id"] for t in api["active"]] == [mine.task_id] and api["others_active"] == 1
    html = client_for(staff).get(reverse("taskboard:workers"), headers=HX).content.decode()
    assert mine.task_id in html and theirs.task_id in html and "others" not in html


def test_panel_polls_and_the_dashboard_loads_it_by_itself(db, ana):
    page = client_for(ana).get(reverse("taskboard:dashboard")).content.decode()
    assert 'id="workers-panel"' in page
    assert 'hx-trigger="load, every 5s, taskboard:changed from:body"' in page
    fragment = client_for(ana).get(reverse("taskboard:workers"), headers=HX).content.decode()
    trigger = 'hx-trigger="every 5s, taskboard:changed from:body" data-taskboard-hold="live"'
    assert trigger in fragment


def test_panel_needs_a_login(client, db):
    response = client.get(reverse("taskboard:workers"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


class BrokenSource:
    name = "broken"

    def fetch(self):
        raise RuntimeError("the source blew up")


def test_a_source_that_raises_is_passed_over_never_a_500(db, staff, settings):
    settings.TASKBOARD_WORKER_SOURCES = ["tests.services.test_workers.BrokenSource", "heartbeats"]
    fresh_heartbeat()
    response = client_for(staff).get(reverse("taskboard:workers"), headers={**HX, **EN})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-source="heartbeats"' in html and 'data-reason="error"' in html
    assert "the source blew up" in html


def test_no_source_answers(db, staff, settings):
    settings.TASKBOARD_WORKER_SOURCES = ["heartbeats"]
    html = client_for(staff).get(reverse("taskboard:workers"), headers=EN).content.decode()
    assert 'data-source="none"' in html and "No worker has recorded a heartbeat yet." in html
    assert "No workers." in html


# --- Celery inspect() -----------------------------------------------------------------------


def test_inspect_names_the_workers_it_knows_and_does_not_wait(worker, settings):
    settings.TASKBOARD_INSPECT_TIMEOUT = 1.0
    wait_until(lambda: heartbeat_of(worker.name), timeout=5)
    started = time.monotonic()
    workers, lengths = InspectSource().fetch()
    elapsed = time.monotonic() - started
    found = next(w for w in workers if w.name == worker.name)
    assert found.online and found.concurrency == 2 and found.queues == ("celery",)
    assert lengths == {"celery": 0}
    # Named workers answer at once; an unnamed broadcast would wait the whole timeout.
    assert elapsed < 1.0


def test_inspect_with_no_worker_says_so_within_its_timeout(db, redis_server, settings):
    settings.TASKBOARD_INSPECT_TIMEOUT = 1.0
    # A broker (another Redis database) that no worker reads.
    lonely = Celery(
        "lonely", broker=redis_server.url.rsplit("/", 1)[0] + "/3", set_as_current=False
    )
    started = time.monotonic()
    snapshot = fetch_snapshot([InspectSource(app=lonely)])
    elapsed = time.monotonic() - started
    lonely.close()
    assert snapshot.source == "none" and snapshot.workers == ()
    assert [(f.source, f.reason) for f in snapshot.fallbacks] == [("inspect", "no_workers")]
    assert elapsed < 1.0 + 0.8


# --- Flower ---------------------------------------------------------------------------------


@pytest.fixture
def with_flower(settings, flower):
    settings.FLOWER_URL = flower.url
    settings.FLOWER_USER = flower.user
    settings.FLOWER_PASSWORD = flower.password
    return flower


def test_flower_shows_the_worker_its_active_task_and_counts(worker, with_flower, staff):
    assert add.delay(2, 3).get(timeout=20) == 5
    running = progress_then_wait.delay(6)

    def flower_sees_it():
        snapshot = fetch_snapshot()
        mine = [w for w in snapshot.workers if w.name == worker.name]
        if mine and any(task.task_id == running.id for task in mine[0].active):
            return snapshot

    snapshot = wait_until(flower_sees_it, timeout=15, interval=0.3)
    assert snapshot.source == "flower" and snapshot.fallbacks == ()
    record = next(w for w in snapshot.workers if w.name == worker.name)
    assert record.online and record.processed >= 1 and record.concurrency == 2
    assert record.queues == ("celery",) and snapshot.queue_lengths is not None
    response = client_for(staff).get(reverse("taskboard:workers"), headers={**HX, **EN})
    html = response.content.decode()
    assert 'data-source="flower"' in html and "Shown from Flower." in html
    assert f'href="{reverse("taskboard:detail", args=[running.id])}"' in html
    api = client_for(staff).get("/api/tasks/workers/").json()
    assert api["source"] == "flower" and api["fallbacks"] == []
    mine = next(w for w in api["workers"] if w["name"] == worker.name)
    assert running.id in [task["task_id"] for task in mine["active"]]
    assert mine["online"] and mine["processed"] >= 1 and mine["concurrency"] == 2
    running.revoke(terminate=True)


def test_flower_info_reports_a_reachable_flower_without_its_credentials(worker, with_flower, staff):
    # Flower learns who is alive from the workers' events, which it switches on itself.
    info = wait_until(lambda: (i := fetch_flower_info()).workers >= 1 and i, timeout=20)
    assert info.reachable and info.url == with_flower.url and info.error == ""
    body = client_for(staff).get("/api/tasks/flower-info/").json()
    assert body["configured"] and body["reachable"] and body["error"] is None
    assert with_flower.password not in str(body) and body["server"].startswith("TornadoServer")
    assert body["source"] == "flower" and "celery" in body["queues"]


def test_flower_with_a_wrong_password_says_so_and_falls_back(db, with_flower, staff, settings):
    settings.FLOWER_PASSWORD = "not-the-password"
    fresh_heartbeat()
    with pytest.raises(FlowerAuthError):
        flower_service().workers()
    html = client_for(staff).get(reverse("taskboard:workers"), headers=EN).content.decode()
    assert 'data-source="heartbeats"' in html and 'data-reason="auth"' in html
    assert "Flower rejected the credentials." in html


def test_flower_without_credentials_is_refused(flower):
    assert requests.get(flower.url + "/api/workers", timeout=5).status_code == 401


def test_flower_not_listening_falls_back_at_once(db, staff, settings):
    settings.FLOWER_URL = closed_port_url()
    fresh_heartbeat()
    with pytest.raises(FlowerUnreachable, match="refused"):
        flower_service().workers()
    started = time.monotonic()
    html = client_for(staff).get(reverse("taskboard:workers"), headers=EN).content.decode()
    assert time.monotonic() - started < 1.0  # refused is instant: no timeout to wait
    assert 'data-source="heartbeats"' in html and 'data-reason="unreachable"' in html
    assert "Flower is not reachable (Connection refused)." in html


def test_flower_that_never_answers_costs_one_read_timeout(db, staff, settings):
    hanging = HangingServer()
    settings.FLOWER_URL = hanging.url
    settings.TASKBOARD_FLOWER_TIMEOUT = (1.0, 1.5)
    fresh_heartbeat()
    try:
        started = time.monotonic()
        response = client_for(staff).get(reverse("taskboard:workers"), headers=EN)
        elapsed = time.monotonic() - started
    finally:
        hanging.close()
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-source="heartbeats"' in html and 'data-reason="timeout"' in html
    assert "Flower did not answer in time." in html
    assert 1.5 <= elapsed < 1.5 + 1.5  # the read timeout, then the heartbeats


# --- Single flight --------------------------------------------------------------------------

FETCHES_KEY = "tbtest:worker-fetches"


class CountingSource:
    """Counts its fetches in Redis and takes a while, so concurrent viewers overlap."""

    name = "counting"

    def fetch(self):
        redis.Redis.from_url(celery_app.conf.broker_url).incr(FETCHES_KEY)
        time.sleep(0.5)
        return [WorkerRecord(name="counted@localhost", online=True)], {}


def test_fifty_concurrent_viewers_cost_one_fetch(live_server, staff, settings, redis_client):
    settings.TASKBOARD_WORKER_SOURCES = ["tests.services.test_workers.CountingSource"]
    # Long enough that all fifty fall within one interval, however busy the machine.
    settings.TASKBOARD_WORKERS_CACHE_SECONDS = 60
    redis_client.delete(FETCHES_KEY)
    client = client_for(staff)
    cookies = {"sessionid": client.cookies["sessionid"].value}
    url = live_server.url + reverse("taskboard:workers")

    def view(_: int) -> requests.Response:
        return requests.get(url, cookies=cookies, headers=HX, timeout=30)

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(view, range(50)))
    assert [r.status_code for r in responses] == [200] * 50
    assert all("counted@localhost" in r.text for r in responses)
    assert redis_client.get(FETCHES_KEY) == "1"
    # Still fresh: the next viewer gets the cached snapshot without a fetch...
    assert workers_snapshot().workers[0].name == "counted@localhost"
    assert redis_client.get(FETCHES_KEY) == "1"
    # ...and once the interval has passed, one new fetch.
    settings.TASKBOARD_WORKERS_CACHE_SECONDS = 0.2
    time.sleep(0.3)
    workers_snapshot()
    assert redis_client.get(FETCHES_KEY) == "2"


def test_a_fetcher_that_died_holding_the_lock_delays_viewers_until_it_expires(
    settings, redis_client
):
    settings.TASKBOARD_WORKER_SOURCES = ["tests.services.test_workers.CountingSource"]
    redis_client.delete(FETCHES_KEY)
    # A fetcher that was killed mid-fetch: its lock stays until it expires, nothing cached.
    # (1 s: the take-over's fetch, 0.5 s, must end within the viewers' 2.5 s wait; a 2 s lock
    # left that to luck.)
    caches[conf.CACHE_ALIAS].add(f"{WORKERS_KEY}:lock", "dead", timeout=1)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=5) as pool:
        snapshots = list(pool.map(lambda _: workers_snapshot(), range(5)))
    assert [s.workers[0].name for s in snapshots] == ["counted@localhost"] * 5
    assert redis_client.get(FETCHES_KEY) == "1"  # one of them took over, the others waited
    assert time.monotonic() - started >= 0.9  # they waited for the dead lock to expire


def test_task_manager_terminates_through_a_real_flower(worker, with_flower, settings):
    settings.TASKBOARD_REVOKE_VIA_FLOWER = True
    # Flower follows tasks through the workers' task events, which it switches on every 5 s.
    wait_until(lambda: _task_info(add.delay(1, 1).id) is not None, timeout=20, interval=1)
    running = progress_then_wait.delay(30)
    wait_until(
        lambda: TaskExecution.objects.filter(task_id=running.id, state__in=RUNNING_STATES).exists(),
        timeout=15,
    )
    assert TaskManager().revoke(running.id, terminate=True) == "flower"
    wait_until(
        lambda: TaskExecution.objects.get(task_id=running.id).state == TaskState.REVOKED,
        timeout=15,
    )
    info = wait_until(
        lambda: (i := _task_info(running.id)) and i.get("state") == "REVOKED" and i, timeout=15
    )
    assert info["uuid"] == running.id and info["worker"] == worker.name


def _task_info(task_id: str) -> dict[str, Any] | None:
    try:
        return flower_service().task_info(task_id)
    except FlowerBadResponse:  # 404 until Flower has seen an event of the task
        return None
