"""Retry: a failed, revoked or lost task enqueued again with the same call, linked to it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from celery import signals
from django.core.exceptions import PermissionDenied
from django.test import Client, override_settings
from django.urls import reverse

from taskboard.models import TaskExecution, TaskState
from taskboard.services.launch import RetryNotPossible, execution_can_retry, execution_retry
from taskboard.tracking.calls import call_record
from taskboard.tracking.ownership import launched_by
from tests import worker_tasks
from tests.factories import client_for, make_execution, make_history
from tests.tracking.test_tracking import wait_for_state

HX = {"HX-Request": "true"}
ADD_CALL = {"args": [20, 22], "kwargs": {}}


def retry_url(execution: TaskExecution) -> str:
    return reverse("taskboard:retry", args=[execution.task_id])


def detail_html(client: Client, task_id: str) -> str:
    response = client.get(reverse("taskboard:detail", args=[task_id]))
    assert response.status_code == 200
    return response.content.decode()


def failed_add(**fields: Any) -> TaskExecution:
    defaults: dict[str, Any] = {
        "task_name": "tests.worker_tasks.add",
        "display_name": "add",
        "module": "tests",
        "state": TaskState.FAILURE,
        "call": ADD_CALL,
        "args_summary": "[20, 22]",
    }
    return make_execution(**{**defaults, **fields})


@pytest.fixture
def published() -> Iterator[list[tuple[str, Any, dict[str, Any]]]]:
    """(task name, body, headers) of every task this process publishes while the test runs."""
    seen: list[tuple[str, Any, dict[str, Any]]] = []

    def record(sender: Any = None, body: Any = None, headers: Any = None, **_: Any) -> None:
        seen.append((str(sender), body, dict(headers or {})))

    signals.before_task_publish.connect(record, weak=False, dispatch_uid="tests.retry_published")
    yield seen
    signals.before_task_publish.disconnect(dispatch_uid="tests.retry_published")


def test_retry_runs_to_success_after_the_cause_is_fixed(worker, ana, redis_client):
    name = f"retry-{uuid.uuid4().hex[:8]}"
    with launched_by(ana):
        first = worker_tasks.fails_first_time.delay(name)
    old = wait_for_state(first.id, TaskState.FAILURE)
    assert old.call == {"args": [name], "kwargs": {}} and old.user_id == ana.pk
    client = client_for(ana)
    assert 'id="retry-button"' in detail_html(client, old.task_id)

    response = client.post(retry_url(old))
    assert response.status_code == 302
    new_id = response["Location"].rstrip("/").rsplit("/", 1)[-1]
    assert response["Location"] == reverse("taskboard:detail", args=[new_id])
    new = wait_for_state(new_id, TaskState.SUCCESS)
    assert new.retry_of_id == old.pk and new.user_id == ana.pk
    assert new.task_name == old.task_name and new.call == old.call
    assert new.result_summary == json.dumps(f"{name}: run 2")
    assert int(redis_client.get(worker_tasks.runs_key(name))) == 2
    assert list(old.retried_as.all()) == [new]

    new_page = detail_html(client, new_id)
    assert f'href="{reverse("taskboard:detail", args=[old.task_id])}"' in new_page
    assert 'class="retry-of"' in new_page and 'id="retry-button"' not in new_page
    old_page = detail_html(client, old.task_id)
    assert 'class="retried-as"' in old_page
    assert f'href="{reverse("taskboard:detail", args=[new_id])}"' in old_page


def test_htmx_retry_answers_hx_redirect(ana, django_capture_on_commit_callbacks, published):
    old = failed_add(user=ana)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for(ana).post(retry_url(old), headers=HX)
    assert response.status_code == 200
    new = TaskExecution.objects.get(retry_of=old)
    assert response["HX-Redirect"] == reverse("taskboard:detail", args=[new.task_id])
    assert (new.state, new.user_id, new.module, new.call) == (
        TaskState.PENDING,
        ana.pk,
        "tests",
        ADD_CALL,
    )
    assert len(callbacks) == 1 and published == []  # enqueued once the transaction commits


def test_retry_sends_the_same_call_with_its_types_owned_by_who_retried(
    worker, ana, staff, published
):
    call = call_record(
        [],
        {
            "titulo": "t",
            "dia": date(2026, 11, 30),
            "importe": Decimal("1.10"),
            "desde": datetime(2026, 11, 1, 8, 30, tzinfo=UTC),
        },
    )
    old = failed_add(user=ana, task_name="tests.worker_tasks.informe", call=call)
    new = execution_retry(execution=old, by=staff)
    assert (new.retry_of_id, new.user_id, new.call) == (old.pk, staff.pk, call)
    assert [(name, headers["id"]) for name, _, headers in published] == [
        ("tests.worker_tasks.informe", new.task_id)
    ]
    assert published[0][2]["taskboard_user_id"] == staff.pk  # child tasks inherit the owner
    received = json.loads(wait_for_state(new.task_id, TaskState.SUCCESS).result_summary)
    assert received["dia"] == ["date", "2026-11-30"]
    assert received["importe"] == ["Decimal", "1.10"]
    assert received["desde"] == ["datetime", "2026-11-01 08:30:00+00:00"]
    assert TaskExecution.objects.get(task_id=new.task_id).user_id == staff.pk


def test_who_may_retry(ana, other, staff):
    old = failed_add(user=ana)
    assert client_for(other).post(retry_url(old)).status_code == 404  # cannot even see it
    assert not TaskExecution.objects.filter(retry_of=old).exists()
    with pytest.raises(PermissionDenied):
        execution_retry(execution=old, by=other)
    assert execution_can_retry(execution=old, user=ana)
    assert execution_can_retry(execution=old, user=staff)
    assert not execution_can_retry(execution=old, user=other)
    assert client_for(ana).post(retry_url(old)).status_code == 302
    assert TaskExecution.objects.get(retry_of=old).user_id == ana.pk
    theirs = failed_add(user=ana)
    assert client_for(staff).post(retry_url(theirs)).status_code == 302
    assert TaskExecution.objects.get(retry_of=theirs).user_id == staff.pk  # who retried
    assert Client().post(retry_url(old)).status_code == 302  # to the login page
    assert client_for(ana).get(retry_url(old)).status_code == 405


def test_retry_needs_csrf(ana):
    old = failed_add(user=ana)
    client = Client(enforce_csrf_checks=True)
    client.force_login(ana)
    assert client.post(retry_url(old)).status_code == 403
    assert not TaskExecution.objects.filter(retry_of=old).exists()


@pytest.mark.parametrize(
    "state",
    [TaskState.PENDING, TaskState.STARTED, TaskState.PROGRESS, TaskState.RETRY, TaskState.SUCCESS],
)
def test_tasks_not_failed_revoked_or_lost_are_not_retried(ana, state):
    execution = failed_add(user=ana, state=state)
    response = client_for(ana).post(retry_url(execution))
    assert response.status_code == 409
    assert not TaskExecution.objects.filter(retry_of=execution).exists()
    with pytest.raises(RetryNotPossible) as problem:
        execution_retry(execution=execution, by=ana)
    assert problem.value.code == "state"
    assert 'id="retry-button"' not in detail_html(client_for(ana), execution.task_id)


@pytest.mark.parametrize("state", [TaskState.FAILURE, TaskState.REVOKED, TaskState.LOST])
def test_failed_revoked_and_lost_tasks_are_retried(ana, state):
    execution = failed_add(user=ana, state=state)
    assert 'id="retry-button"' in detail_html(client_for(ana), execution.task_id)
    assert client_for(ana).post(retry_url(execution)).status_code == 302
    assert TaskExecution.objects.get(retry_of=execution).state == TaskState.PENDING


def test_a_task_called_with_a_password_keeps_no_call_and_cannot_be_retried(worker, ana):
    with launched_by(ana):
        result = worker_tasks.log_in_fails.delay("ana", password="hunter2")
        positional = worker_tasks.log_in_fails.delay("ana", "hunter2")
    for task_id in (result.id, positional.id):
        execution = wait_for_state(task_id, TaskState.FAILURE)
        assert execution.call is None
        assert "hunter2" not in json.dumps(execution.call) + execution.kwargs_summary
        assert "hunter2" not in execution.args_summary
        response = client_for(ana).post(retry_url(execution), headers={"Accept-Language": "en"})
        assert response.status_code == 409
        assert "not kept" in response.content.decode()
        page = detail_html(client_for(ana), task_id)
        assert 'class="retry-blocked muted"' in page and 'id="retry-button"' not in page
    assert not TaskExecution.objects.filter(retry_of__isnull=False).exists()


def test_what_keeps_a_call():
    assert call_record([], {}) == {"args": [], "kwargs": {}}
    assert call_record([1, "a"], {"n": [1, {"b": None}]}) == {
        "args": [1, "a"],
        "kwargs": {"n": [1, {"b": None}]},
    }
    assert call_record(["x"], {}, ("password",)) is None
    assert call_record([], {"api_key": "k"}) is None
    assert call_record([{"nested": {"Token": 1}}], {}) is None
    assert call_record([object()], {}) is None  # not JSON
    with override_settings(TASKBOARD_CALL_MAX_CHARS=40):
        assert call_record(["x" * 50], {}) is None
        assert call_record(["short"], {}) is not None
    with override_settings(TASKBOARD_CALL_MAX_CHARS=0):
        assert call_record(["short"], {}) is None


def test_a_broker_that_refuses_the_message_fails_the_new_execution(
    ana, monkeypatch, django_capture_on_commit_callbacks
):
    old = failed_add(user=ana)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker unreachable")

    # A fault the suite cannot cause for one message only: the broker refusing it.
    monkeypatch.setattr(worker_tasks.add, "apply_async", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        new = execution_retry(execution=old, by=ana)
    new.refresh_from_db()
    assert new.state == TaskState.FAILURE
    assert new.exception_message == "Could not be enqueued: broker unreachable"
    assert execution_can_retry(execution=new, user=ana)


def test_detail_query_counts_are_pinned(ana, staff, settings, django_assert_max_num_queries):
    # ana's history holds unfinished tasks: limits above them, so the retry is let through
    settings.TASKBOARD_MAX_UNFINISHED_PER_USER = settings.TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE = (
        1000
    )
    make_history([ana, staff], count=300)
    old = failed_add(user=ana)
    newer = [failed_add(user=ana, retry_of=old) for _ in range(3)]
    for user in (ana, staff):
        client = client_for(user)
        # session + user + execution (with retry_of) + children + retried as
        for execution in (old, newer[0]):
            with django_assert_max_num_queries(5):
                html = detail_html(client, execution.task_id)
            assert html.count('class="retried-as"') == (3 if execution == old else 0)
    # session + user + execution + retried yet? + unfinished count (limits) + the new row
    # (in a savepoint)
    fresh = failed_add(user=ana)
    client = client_for(ana)
    with django_assert_max_num_queries(8):
        assert client.post(retry_url(fresh)).status_code == 302


def test_a_task_is_retried_once(ana, staff):
    old = failed_add(user=ana)
    assert client_for(ana).post(retry_url(old)).status_code == 302
    new = TaskExecution.objects.get(retry_of=old)
    for user in (ana, staff):
        response = client_for(user).post(retry_url(old), headers={"Accept-Language": "en"})
        assert response.status_code == 409
        assert "already been retried" in response.content.decode()
        page = detail_html(client_for(user), old.task_id)
        assert 'id="retry-button"' not in page and 'class="retry-blocked muted"' in page
        assert f'href="{reverse("taskboard:detail", args=[new.task_id])}"' in page
    with pytest.raises(RetryNotPossible) as problem:
        execution_retry(execution=old, by=staff)
    assert problem.value.code == "retried"
    assert TaskExecution.objects.filter(retry_of=old).count() == 1
    # The retry failed in turn: it is retried from its own page.
    TaskExecution.objects.filter(pk=new.pk).update(state=TaskState.FAILURE)
    assert client_for(ana).post(retry_url(new)).status_code == 302
    assert TaskExecution.objects.get(retry_of=new).user_id == ana.pk
