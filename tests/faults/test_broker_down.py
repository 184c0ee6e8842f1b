"""Launch while the broker is down (a private redis-server, stopped, then frozen): a clear
503 page or JSON, the row recorded as not sent (FAILURE, retryable), never a PENDING ghost."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.urls import reverse

from taskboard.models import TaskExecution, TaskState
from taskboard.services import launch
from taskboard.tracking import sync_templates
from taskboard.tracking.calls import call_record
from tests import worker_tasks  # noqa: F401  (declares the "pruebas.informe" template)
from tests.factories import client_for, make_execution
from tests.faults.fakes import PrivateRedis, celery_on, production_cache

EN = {"Accept-Language": "en"}
LAUNCH_URL = reverse("taskboard:template_launch", args=["pruebas.informe"])
FORM = {"titulo": "Mensual", "dia": "2026-11-30", "copias": "3"}


@pytest.fixture
def broker(tmp_path, settings, monkeypatch, transactional_db) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    settings.CACHES = {"default": production_cache(server.url)}
    monkeypatch.setattr(launch.publishes, "until", 0.0)
    with celery_on(server.url):
        yield server
    server.stop()


def no_pending_ghost(task_id: str) -> TaskExecution:
    row = TaskExecution.objects.get(task_id=task_id)
    assert row.state == TaskState.FAILURE, row.state
    assert row.exception_type == "BrokerUnreachable"
    assert row.exception_message.startswith("Could not be sent: the task queue (broker)")
    return row


@pytest.mark.parametrize("fault", ["stopped", "frozen"])
def test_launch_while_the_broker_is_down_is_a_503_and_no_pending_row(
    broker, staff, db, fault, monkeypatch
):
    sync_templates()
    client = client_for(staff)
    broker.stop() if fault == "stopped" else broker.freeze()
    try:
        started = time.monotonic()
        response = client.post(LAUNCH_URL, FORM, headers=EN)
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        html = response.content.decode()
        assert "The task queue (broker) is unreachable" in html
        assert 'value="Mensual"' in html  # the form comes back filled in: nothing lost
        assert elapsed < 8.0  # bounded: the broker's wait and one cache timeout per reader
        assert not TaskExecution.objects.filter(state=TaskState.PENDING).exists()
        failed = TaskExecution.objects.get(template__key="pruebas.informe")
        no_pending_ghost(failed.task_id)

        # Retrying the failed one (the broker still down): a 503 page, again no ghost.
        monkeypatch.setattr(launch.publishes, "until", 0.0)
        retry = client.post(reverse("taskboard:retry", args=[failed.task_id]), headers=EN)
        assert retry.status_code == 503
        assert "The task queue (broker) is unreachable" in retry.content.decode()
        assert not TaskExecution.objects.filter(state=TaskState.PENDING).exists()
        second = TaskExecution.objects.get(retry_of=failed)
        no_pending_ghost(second.task_id)

        # Cancel through the API: JSON 503 with the error, the cancel recorded.
        running = make_execution(state=TaskState.STARTED, user=staff)
        api = client.post(f"/api/tasks/cancel/{running.task_id}/", headers=EN)
        assert api.status_code == 503
        assert "task queue (broker) is unreachable" in api.json()["error"]
        running.refresh_from_db()
        assert running.cancel_requested_at is not None
    finally:
        if fault == "stopped":
            broker.start()
        else:
            broker.thaw()

    # The broker is back: the one not sent is retried and this time goes out.
    monkeypatch.setattr(launch.publishes, "until", 0.0)
    response = client.post(reverse("taskboard:retry", args=[second.task_id]))
    assert response.status_code == 302
    third = TaskExecution.objects.get(retry_of=second)
    assert third.state == TaskState.PENDING  # sent: a worker would take it now


def test_bulk_retry_while_the_broker_is_down_says_how_many_were_not_sent(broker, staff, db):
    old = [
        make_execution(
            state=TaskState.FAILURE,
            task_name="tests.worker_tasks.add",
            call=call_record([1, 2], {}),
            user=staff,
        )
        for _ in range(5)
    ]
    broker.freeze()
    try:
        started = time.monotonic()
        response = client_for(staff).post(
            reverse("taskboard:bulk_run"),
            {"action": "retry", "scope": "selected", "ids": [row.pk for row in old]},
            headers=EN,
        )
        elapsed = time.monotonic() - started
    finally:
        broker.thaw()
    assert response.status_code == 503, response.content.decode()[:500]
    assert "retries were not sent" in response.content.decode()
    # One wait on the frozen broker (~3 s: connect, one retry), and at most one socket
    # timeout (1 s) for each reader of the shared cache, which here is the same frozen Redis
    # (the session, the change stamp: each then skips it for a while) — not one per task
    # (five tasks: 15 s and more).
    assert elapsed < 8.0
    assert not TaskExecution.objects.filter(state=TaskState.PENDING).exists()
    assert TaskExecution.objects.filter(exception_type="BrokerUnreachable").count() == 5
