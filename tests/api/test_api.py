"""The JSON API at /api/tasks/ and the TaskManager behind its cancel."""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from sgm.celery import app as celery_app
from sgm.nomina.tasks import exportar_nominas
from taskboard.models import TaskExecution, TaskState
from taskboard.services.cancel import TaskManager
from tests.factories import client_for, make_execution, make_history, make_user
from tests.processes import free_port, wait_until
from tests.worker_tasks import add

README = Path(__file__).resolve().parents[2] / "README.md"

EXECUTIONS = reverse("taskboard_api:executions")
USER_TASKS = reverse("taskboard_api:user_tasks")
WORKERS = reverse("taskboard_api:workers")
FLOWER_INFO = reverse("taskboard_api:flower_info")
LISTS = (EXECUTIONS, USER_TASKS)
GETS = (EXECUTIONS, USER_TASKS, WORKERS, FLOWER_INFO)

RESULT_KEYS = {
    "task_id",
    "task_name",
    "display_name",
    "module",
    "user",
    "state",
    "progress",
    "progress_message",
    "worker",
    "queue",
    "retries",
    "created_at",
    "started_at",
    "finished_at",
    "duration",
    "result_summary",
    "exception",
    "url",
    "cancel_requested_at",
}


def cancel_url(task_id: str) -> str:
    return reverse("taskboard_api:cancel", args=[task_id])


def payload(response: Any, status: int = 200) -> Any:
    """The JSON body, after checking the status and that it is JSON."""
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    return json.loads(response.content)


def error_of(response: Any, status: int) -> str:
    body = payload(response, status)
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    return str(body["error"])


def task_ids(body: dict[str, Any]) -> list[str]:
    return [row["task_id"] for row in body["results"]]


def csrf_client(user: Any) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


# --- Permissions ----------------------------------------------------------------------------


def test_anonymous_gets_json_403_never_a_redirect(client, ana):
    execution = make_execution(user=ana, state=TaskState.PENDING)
    for url in GETS:
        error_of(client.get(url), 403)
    error_of(client.post(cancel_url(execution.task_id)), 403)
    assert TaskExecution.objects.get(pk=execution.pk).cancel_requested_at is None


def test_users_see_their_own_executions_and_staff_see_all(ana, other, staff):
    mine = make_execution(user=ana)
    theirs = make_execution(user=other)
    nobodys = make_execution(user=None)
    assert task_ids(payload(client_for(ana).get(EXECUTIONS))) == [mine.task_id]
    assert task_ids(payload(client_for(other).get(EXECUTIONS))) == [theirs.task_id]
    everything = task_ids(payload(client_for(staff).get(EXECUTIONS)))
    assert everything == [nobodys.task_id, theirs.task_id, mine.task_id]  # newest first


def test_user_filter_is_yourself_unless_staff(ana, other, staff):
    mine = make_execution(user=ana)
    theirs = make_execution(user=other)
    client = client_for(ana)
    assert task_ids(payload(client.get(EXECUTIONS, {"user": "ana"}))) == [mine.task_id]
    assert task_ids(payload(client.get(EXECUTIONS, {"user": str(ana.pk)}))) == [mine.task_id]
    error_of(client.get(EXECUTIONS, {"user": "otro"}), 403)
    error_of(client.get(EXECUTIONS, {"user": str(other.pk)}), 403)
    error_of(client.get(EXECUTIONS, {"user": "nobody"}), 403)
    boss = client_for(staff)
    assert task_ids(payload(boss.get(EXECUTIONS, {"user": "otro"}))) == [theirs.task_id]
    assert task_ids(payload(boss.get(EXECUTIONS, {"user": str(other.pk)}))) == [theirs.task_id]
    nobody = payload(boss.get(EXECUTIONS, {"user": "nobody"}))
    assert nobody["results"] == [] and nobody["count"] == 0


def test_user_tasks_are_the_callers_own_even_for_staff(ana, staff):
    make_execution(user=ana)
    own = make_execution(user=staff)
    for params in ({}, {"user": "ana"}):  # user= is not a parameter here
        body = payload(client_for(staff).get(USER_TASKS, params))
        assert task_ids(body) == [own.task_id]
    assert payload(client_for(ana).get(USER_TASKS))["results"][0]["user"] == "ana"


def test_workers_for_everyone_logged_in_flower_info_for_staff(ana, other, staff):
    for user in (ana, other, staff):
        body = payload(client_for(user).get(WORKERS))
        assert {"source", "fetched_at", "workers", "queue_lengths", "fallbacks"} <= set(body)
    error_of(client_for(ana).get(FLOWER_INFO), 403)
    error_of(client_for(other).get(FLOWER_INFO), 403)
    info = payload(client_for(staff).get(FLOWER_INFO))
    assert info["configured"] is False and info["reachable"] is False and info["version"] is None


def test_flower_info_says_why_flower_is_unreachable_without_its_password(staff, settings):
    port = free_port()  # nothing listens there: connection refused, for real
    settings.FLOWER_URL = f"http://admin:s3cret@127.0.0.1:{port}"
    settings.TASKBOARD_WORKERS_CACHE_SECONDS = 0
    response = client_for(staff).get(FLOWER_INFO)
    info = payload(response)
    assert info["configured"] is True and info["reachable"] is False
    assert info["error"] == "unreachable" and info["message"]
    assert info["url"] == f"http://127.0.0.1:{port}" and b"s3cret" not in response.content


def test_cancel_permissions(ana, other, staff):
    execution = make_execution(user=ana, state=TaskState.PENDING)
    url = cancel_url(execution.task_id)
    error_of(client_for(other).post(url), 404)  # another user's task: not revealed
    error_of(client_for(ana).post(url, {"terminate": "1"}), 403)
    error_of(client_for(ana).post(url, {"terminate": "maybe"}), 400)
    error_of(client_for(ana).get(url), 405)
    error_of(client_for(ana).post(cancel_url(str(uuid.uuid4()))), 404)
    error_of(client_for(ana).post(cancel_url("bad\x00id")), 404)
    assert TaskExecution.objects.get(pk=execution.pk).cancel_requested_at is None

    body = payload(client_for(ana).post(url))
    execution.refresh_from_db()
    assert execution.cancel_requested_at is not None
    assert body == {
        "task_id": execution.task_id,
        "cancel_requested": True,
        "terminate": False,
        "cancel_requested_at": execution.cancel_requested_at.isoformat(),
        "cancel_requested_by": "ana",
    }
    assert execution.cancel_requested_by_id == ana.pk

    finished = make_execution(user=ana, state=TaskState.SUCCESS)
    error_of(client_for(staff).post(cancel_url(finished.task_id)), 409)
    error_of(client_for(ana).post(cancel_url(finished.task_id)), 409)


def test_staff_may_terminate_with_a_form_field_or_a_json_body(ana, staff):
    client = client_for(staff)
    first = make_execution(user=ana, state=TaskState.PENDING)
    assert payload(client.post(cancel_url(first.task_id), {"terminate": "true"}))["terminate"]
    second = make_execution(user=ana, state=TaskState.PENDING)
    url = cancel_url(second.task_id)
    error_of(client.post(url, "{not json", content_type="application/json"), 400)
    error_of(client.post(url, "[1]", content_type="application/json"), 400)
    body = payload(client.post(url, {"terminate": True}, content_type="application/json"))
    assert body["terminate"] is True and body["cancel_requested_by"] == "jefa"
    third = make_execution(user=ana, state=TaskState.PENDING)
    body = payload(client.post(cancel_url(third.task_id), {}, content_type="application/json"))
    assert body["terminate"] is False


def test_cancel_needs_csrf_and_fails_as_json(ana):
    execution = make_execution(user=ana, state=TaskState.PENDING)
    client = csrf_client(ana)
    error_of(client.post(cancel_url(execution.task_id)), 403)
    error_of(Client(enforce_csrf_checks=True).post(cancel_url(execution.task_id)), 403)
    assert TaskExecution.objects.get(pk=execution.pk).cancel_requested_at is None
    # The dashboard's own CSRF failure is still Django's HTML page.
    html = client.post(reverse("taskboard:cancel", args=[execution.task_id]))
    assert html.status_code == 403 and html["Content-Type"].startswith("text/html")
    # With the cookie's token in the header, as the README's curl does.
    token = "a" * 32
    client.cookies["csrftoken"] = token
    response = client.post(cancel_url(execution.task_id), headers={"X-CSRFToken": token})
    assert payload(response)["cancel_requested"] is True


def test_wrong_methods_are_405_with_allow(ana):
    client = client_for(ana)
    for url in GETS:
        for method in (client.post, client.put, client.delete):
            response = method(url)
            error_of(response, 405)
            assert response["Allow"] == "GET"
    response = client.put(cancel_url("x"))
    error_of(response, 405)
    assert response["Allow"] == "POST"


def test_unknown_api_paths_are_json_404(ana, client):
    for url in ("/api/tasks/nope/", "/api/tasks/", "/api/tasks/cancel/", "/api/tasks/x/y/z"):
        error_of(client_for(ana).get(url), 404)
        error_of(client.get(url), 404)
    # A missing trailing slash: a hint, not a redirect (a POST would not survive one).
    assert "/api/tasks/executions/" in error_of(client_for(ana).get("/api/tasks/executions"), 404)
    error_of(client_for(ana).post("/api/tasks/cancel/abc"), 404)


# --- Filters and pages ----------------------------------------------------------------------


def test_filters_module_state_and_since(ana):
    now = timezone.now()
    old = make_execution(user=ana, module="nomina", created_at=now - timedelta(days=10))
    failed = make_execution(user=ana, module="contabilidad", state=TaskState.FAILURE)
    running = make_execution(user=ana, module="nomina", state=TaskState.PROGRESS)
    client = client_for(ana)

    def ids(**params: str) -> set[str]:
        return set(task_ids(payload(client.get(EXECUTIONS, params))))

    assert ids(module="nomina") == {old.task_id, running.task_id}
    assert ids(module="nope") == set()
    assert ids(state="FAILURE") == {failed.task_id}
    assert ids(state="failure, progress") == {failed.task_id, running.task_id}
    day = (now - timedelta(days=2)).date().isoformat()
    assert ids(since=day) == {failed.task_id, running.task_id}
    assert ids(since=(now - timedelta(days=11)).isoformat()) == {
        old.task_id,
        failed.task_id,
        running.task_id,
    }
    assert ids(since=(now + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")) == set()
    # An unencoded "+01:00" arrives as " 01:00": still understood.
    assert ids(since="2000-01-01T00:00:00 01:00", module="nomina", state="SUCCESS") == {old.task_id}
    repeated = client.get(f"{EXECUTIONS}?state=FAILURE&state=PROGRESS")
    assert set(task_ids(payload(repeated))) == {failed.task_id, running.task_id}
    assert set(task_ids(payload(client.get(USER_TASKS, {"state": "SUCCESS"})))) == {old.task_id}


def test_pages_without_count(ana, django_assert_max_num_queries, django_assert_num_queries):
    make_history([ana], count=120)
    client = client_for(ana)
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        body = payload(client.get(EXECUTIONS, {"limit": "50", "offset": str(offset)}))
        assert body["limit"] == 50 and body["offset"] == offset
        seen += task_ids(body)
        if body["next_offset"] is None:
            assert body["count"] == 120 and len(body["results"]) == 20
        else:
            assert body["count"] is None and len(body["results"]) == 50
        offset = body["next_offset"]
    newest_first = TaskExecution.objects.order_by("-created_at", "-id")
    assert seen == list(newest_first.values_list("task_id", flat=True))
    clamped = payload(client.get(EXECUTIONS, {"limit": "5000"}))
    assert clamped["limit"] == 200 and clamped["count"] == 120
    assert payload(client.get(EXECUTIONS))["limit"] == 50
    past = payload(client.get(EXECUTIONS, {"offset": "1000"}))
    assert past["results"] == [] and past["count"] is None and past["next_offset"] is None
    empty = payload(client.get(EXECUTIONS, {"module": "nope"}))
    assert empty["count"] == 0 and empty["next_offset"] is None


def test_result_fields(ana):
    started = timezone.now() - timedelta(seconds=30)
    execution = make_execution(
        user=ana,
        state=TaskState.FAILURE,
        progress=40,
        progress_message="Empleado 4 de 10",
        worker="w1@host",
        queue="celery",
        retries=2,
        started_at=started,
        finished_at=started + timedelta(seconds=3),
        duration=3.25,
        result_summary="",
        exception_type="ValueError",
        exception_message="periodo cerrado",
        traceback="Traceback (most recent call last): secret internals",
    )
    unowned = make_execution(user=None, state=TaskState.SUCCESS, created_at=started)
    rows = payload(client_for(make_user("boss", staff=True)).get(EXECUTIONS))["results"]
    row, bare = rows
    assert set(row) == RESULT_KEYS
    assert row["task_id"] == execution.task_id and row["user"] == "ana"
    assert row["display_name"] == "Consolidar nómina" and row["module"] == "nomina"
    assert row["state"] == "FAILURE" and row["progress"] == 40 and row["retries"] == 2
    assert row["progress_message"] == "Empleado 4 de 10" and row["worker"] == "w1@host"
    assert row["exception"] == {"type": "ValueError", "message": "periodo cerrado"}
    assert row["duration"] == 3.25 and row["url"] == f"/tasks/{execution.task_id}/"
    assert row["started_at"] == started.isoformat()
    assert row["created_at"] == execution.created_at.isoformat()
    assert row["cancel_requested_at"] is None and "traceback" not in json.dumps(rows)
    assert bare["task_id"] == unowned.task_id and bare["user"] is None
    assert bare["exception"] is None and bare["finished_at"] is None


BAD_PARAMETERS: list[dict[str, str]] = [
    {"limit": "abc"},
    {"limit": "0"},
    {"limit": "-1"},
    {"limit": "1.5"},
    {"limit": "٣"},  # a digit, but not an ASCII one
    {"offset": "-1"},
    {"offset": "abc"},
    {"offset": "99999999999"},
    {"since": "notadate"},
    {"since": "2025-13-45"},
    {"since": "2025-02-30T10:00:00"},
    {"since": "0001-01-01T00:00:00+05:00"},  # before year 1 in UTC
    {"since": "9999-12-31T23:59:59-14:00"},
    {"state": "NOPE"},
    {"state": "SUCCESS,NOPE"},
    {"module": "\x00"},
    {"module": "nom\x00ina"},
    {"module": "x" * 300},
]


def test_bad_parameters_are_400_with_an_error(ana, staff):
    for user in (ana, staff):
        client = client_for(user)
        for url in LISTS:
            for params in BAD_PARAMETERS:
                response = client.get(url, params)
                assert response.status_code == 400, (url, params)
                error_of(response, 400)
    error_of(client_for(staff).get(EXECUTIONS, {"user": "a\x00b"}), 400)
    error_of(client_for(ana).get(EXECUTIONS, {"user": "a\x00b"}), 400)


GARBAGE = [
    "limit=abc",
    "limit=%00",
    "limit=99999999999999999999999",
    "offset=-1",
    "offset=1e9",
    "since=notadate",
    "since=%00",
    "since=2025-01-01T25:61:00",
    "since=-2025-01-01",
    "since=0001-01-01",
    "since=9999-12-31",
    "state=NOPE",
    "state=%00",
    "state=,,,",
    "module=%00",
    "module=%FF%FE",
    "user=%00",
    "user=99999999999999999999",
    "user=-1",
    "user=" + "9" * 5000,
    "terminate=%00",
    "limit=10&limit=abc",
]


def test_garbage_never_fails(client, ana, staff):
    make_execution(user=ana)
    for who in (client, client_for(ana), client_for(staff)):
        for url in (*GETS, "/api/tasks/%00/", "/api/tasks/cancel/%00/"):
            for query in GARBAGE:
                response = who.get(f"{url}?{query}")
                assert response.status_code < 500, (url, query)
                assert response["Content-Type"] == "application/json"
        for task_id in ("%00", "x" * 400, "..", "%FF"):
            response = who.post(f"/api/tasks/cancel/{task_id}/", {"terminate": "\x00"})
            assert response.status_code < 500 and response["Content-Type"] == "application/json"


def test_too_many_fields_or_a_broken_body_is_a_json_400(ana, staff):
    too_many = "&".join(f"f{index}=1" for index in range(1100))  # DATA_UPLOAD_MAX_NUMBER_FIELDS
    error_of(client_for(ana).get(f"{EXECUTIONS}?{too_many}"), 400)
    execution = make_execution(user=ana, state=TaskState.PENDING)
    no_boundary = "multipart/form-data"  # the parser refuses it (MultiPartParserError)
    response = client_for(staff).post(cancel_url(execution.task_id), "x", content_type=no_boundary)
    error_of(response, 400)
    assert TaskExecution.objects.get(pk=execution.pk).cancel_requested_at is None


def test_query_counts_are_pinned(ana, other, staff, django_assert_max_num_queries):
    make_history([ana, other, staff, make_user()], count=400)
    for user in (ana, staff):
        client = client_for(user)
        # session + user + one page of rows with their owners (select_related); no COUNT
        for url in LISTS:
            with django_assert_max_num_queries(3) as captured:
                body = payload(client.get(url, {"limit": "200", "state": "SUCCESS,FAILURE"}))
            assert body["results"]
            assert not any("COUNT(" in query["sql"].upper() for query in captured.captured_queries)
    # Staff naming an owner: one more, small, query resolves the name.
    boss = client_for(staff)
    with django_assert_max_num_queries(4):
        body = payload(boss.get(EXECUTIONS, {"user": "otro", "limit": "200"}))
    assert body["results"] and {row["user"] for row in body["results"]} == {"otro"}
    execution = make_execution(user=ana, state=TaskState.PENDING)
    owner = client_for(ana)
    # session + user + the task + the conditional UPDATE
    with django_assert_max_num_queries(4):
        payload(owner.post(cancel_url(execution.task_id)))


# --- The README documents the real shapes ---------------------------------------------------


def readme_examples() -> dict[str, Any]:
    """{heading of each "### ..." section of the README's JSON API: its first JSON example}."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## JSON API\n", 1)[1].split("\n## ", 1)[0]
    examples: dict[str, Any] = {}
    for part in section.split("\n### ")[1:]:
        heading, _, body = part.partition("\n")
        found = re.search(r"```json\n(.*?)\n```", body, re.DOTALL)
        if found:
            examples[heading.strip().strip("`")] = json.loads(found.group(1))
    return examples


def assert_same_shape(documented: Any, real: Any, where: str = "$") -> None:
    """Same keys at every level both sides show (a null, or an empty list, has no shape)."""
    if isinstance(documented, dict) and isinstance(real, dict):
        assert set(documented) == set(real), (where, set(documented) ^ set(real))
        for key in documented:
            assert_same_shape(documented[key], real[key], f"{where}.{key}")
    elif isinstance(documented, list) and isinstance(real, list):
        if documented and real:
            assert_same_shape(documented[0], real[0], f"{where}[0]")
    elif documented is not None and real is not None:
        assert type(documented) is type(real) or {type(documented), type(real)} <= {int, float}, (
            where,
            documented,
            real,
        )


def test_readme_documents_the_real_response_shapes(worker, django_user_model, settings):
    settings.TASKBOARD_WORKERS_CACHE_SECONDS = 0
    examples = readme_examples()
    assert set(examples) == {
        "GET /api/tasks/executions/",
        "GET /api/tasks/workers/",
        "GET /api/tasks/flower-info/",
        "POST /api/tasks/cancel/<task_id>/",
        "Errors",
    }
    boss = django_user_model.objects.create_user("jefe", password="x-123456789", is_staff=True)
    client = client_for(boss)
    # A running task, so the workers' active lists have something in them.
    running = exportar_nominas.apply_async((9,), {"user_id": boss.pk, "paginas": 2, "pausa": 30})
    wait_until(
        lambda: TaskExecution.objects.filter(task_id=running.id, state=TaskState.STARTED).exists(),
        20,
    )
    make_execution(
        user=boss, state=TaskState.FAILURE, exception_type="E", exception_message="m", duration=1.0
    )

    documented = examples["GET /api/tasks/executions/"]
    for url in LISTS:
        real = payload(client.get(url, {"limit": "1"}))
        assert real["results"][0]["exception"] is not None
        assert_same_shape(documented, real)

    def shows_the_running_task() -> Any:
        real = payload(client.get(WORKERS))
        active = [task for w in real["workers"] for task in w["active"]]
        return real if any(task["task_id"] == running.id for task in active) else None

    assert_same_shape(examples["GET /api/tasks/workers/"], wait_until(shows_the_running_task, 15))
    assert_same_shape(examples["GET /api/tasks/flower-info/"], payload(client.get(FLOWER_INFO)))
    cancelled = payload(client.post(cancel_url(running.id), {"terminate": "1"}))
    assert_same_shape(examples["POST /api/tasks/cancel/<task_id>/"], cancelled)
    assert_same_shape(examples["Errors"], payload(client.get(EXECUTIONS, {"state": "NOPE"}), 400))
    wait_until(lambda: TaskExecution.objects.get(task_id=running.id).state == TaskState.REVOKED, 15)


# --- Cancelling real tasks ------------------------------------------------------------------


def test_owner_cancels_a_running_task_through_the_api(worker, django_user_model):
    owner = django_user_model.objects.create_user("rosa", password="x-123456789")
    result = exportar_nominas.apply_async(
        (5,), {"user_id": owner.pk, "paginas": 400, "pausa": 0.05}
    )
    wait_until(
        lambda: TaskExecution.objects.filter(task_id=result.id, state=TaskState.PROGRESS).exists(),
        30,
    )
    client = csrf_client(owner)
    client.cookies["csrftoken"] = token = "b" * 32
    body = payload(client.post(cancel_url(result.id), headers={"X-CSRFToken": token}))
    assert body["cancel_requested"] is True and body["cancel_requested_by"] == "rosa"
    wait_until(lambda: TaskExecution.objects.get(task_id=result.id).state == TaskState.REVOKED, 10)
    execution = TaskExecution.objects.get(task_id=result.id)
    assert execution.cancel_requested_by_id == owner.pk and execution.cancel_requested_at
    assert execution.cancel_requested_at.isoformat() == body["cancel_requested_at"]
    # Cancelling it again: it has finished.
    error_of(client.post(cancel_url(result.id), headers={"X-CSRFToken": token}), 409)
    listed = payload(client.get(USER_TASKS))["results"][0]
    assert listed["task_id"] == result.id and listed["state"] == TaskState.REVOKED
    assert listed["cancel_requested_at"] == body["cancel_requested_at"]


def _started(task_id: str) -> bool:
    return TaskExecution.objects.filter(task_id=task_id, state=TaskState.STARTED).exists()


def _revoked(task_id: str) -> TaskExecution | None:
    return TaskExecution.objects.filter(task_id=task_id, state=TaskState.REVOKED).first()


def test_task_manager_revokes_a_queued_task_by_broadcast(worker):
    # Held by the worker until its countdown ends: revoked before it ever runs.
    result = add.apply_async((1, 2), countdown=3)
    wait_until(lambda: TaskExecution.objects.filter(task_id=result.id).exists(), 10)
    assert TaskManager().flower() is None
    assert TaskManager(celery_app).revoke(result.id) == "control"
    execution = wait_until(lambda: _revoked(result.id), 15)
    assert execution.started_at is None and execution.result_summary == ""


def test_task_manager_terminates_a_running_task_by_broadcast(worker, settings):
    settings.FLOWER_URL = "http://127.0.0.1:5555"  # set, but revoking via Flower is not on
    result = exportar_nominas.apply_async((6,), {"paginas": 2, "pausa": 30})
    wait_until(lambda: _started(result.id), 15)
    assert TaskManager().flower() is None
    assert TaskManager().revoke(result.id, terminate=True) == "control"
    execution = wait_until(lambda: _revoked(result.id), 10)
    assert execution.exception_message == "Terminated (SIGTERM)"


def test_task_manager_falls_back_when_flower_refuses_the_connection(worker, caplog):
    port = free_port()  # nothing listens: connection refused, for real
    result = exportar_nominas.apply_async((7,), {"paginas": 2, "pausa": 30})
    wait_until(lambda: _started(result.id), 15)
    with (
        override_settings(FLOWER_URL=f"http://127.0.0.1:{port}", TASKBOARD_REVOKE_VIA_FLOWER=True),
        caplog.at_level(logging.WARNING, logger="taskboard.services.cancel"),
    ):
        manager = TaskManager()
        assert manager.flower() is not None
        assert manager.revoke(result.id, terminate=True) == "control"
    assert "unreachable" in caplog.text
    execution = wait_until(lambda: _revoked(result.id), 10)
    assert execution.exception_message == "Terminated (SIGTERM)"


@pytest.mark.parametrize(
    ("flower_url", "via_flower", "uses_flower"),
    [("", True, False), ("http://127.0.0.1:5555", False, False), ("http://f:5555", True, True)],
)
def test_task_manager_uses_flower_only_when_configured_and_asked(
    settings, flower_url, via_flower, uses_flower
):
    settings.FLOWER_URL = flower_url
    settings.TASKBOARD_REVOKE_VIA_FLOWER = via_flower
    assert (TaskManager().flower() is not None) is uses_flower
