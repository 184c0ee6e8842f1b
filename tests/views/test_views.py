"""The dashboard's pages, fragments and actions."""

from __future__ import annotations

import json

from django.test import Client
from django.urls import reverse

from sgm.nomina.tasks import exportar_nominas
from taskboard.models import TaskExecution, TaskState
from tests.factories import client_for, make_execution, make_history, make_user
from tests.processes import wait_until

HX = {"HX-Request": "true"}


def urls_for(execution: TaskExecution) -> list[str]:
    return [
        reverse("taskboard:dashboard"),
        reverse("taskboard:list"),
        reverse("taskboard:detail", args=[execution.task_id]),
        reverse("taskboard:progress", args=[execution.task_id]),
    ]


def test_anonymous_is_sent_to_log_in(client, ana):
    execution = make_execution(user=ana, state=TaskState.PROGRESS)
    for url in urls_for(execution):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    response = client.post(reverse("taskboard:cancel", args=[execution.task_id]))
    assert response.status_code == 302
    assert TaskExecution.objects.get(pk=execution.pk).cancel_requested_at is None


def test_page_is_a_whole_page_and_fragments_are_fragments(ana):
    execution = make_execution(user=ana, state=TaskState.PROGRESS, progress=40)
    client = client_for(ana)
    page = client.get(reverse("taskboard:dashboard"))
    assert page.status_code == 200 and b"<html" in page.content
    trigger = b'hx-trigger="every 5s, taskboard:changed from:body" data-taskboard-hold="live"'
    assert trigger in page.content and b"data-taskboard-live" in page.content
    for headers in ({}, HX):
        fragment = client.get(reverse("taskboard:list"), headers=headers)
        assert fragment.status_code == 200 and b"<html" not in fragment.content
        assert (
            b'id="task-list"' in fragment.content and execution.task_id.encode() in fragment.content
        )
    as_htmx = client.get(reverse("taskboard:dashboard"), headers=HX)
    assert b"<html" not in as_htmx.content and b'id="task-list"' in as_htmx.content


def test_fragment_keeps_its_filters_sort_and_page(ana):
    make_execution(user=ana, module="contabilidad", state=TaskState.FAILURE)
    response = client_for(ana).get(
        reverse("taskboard:list"), {"module": "contabilidad", "sort": "-module", "page": "1"}
    )
    html = response.content.decode()
    assert 'hx-get="/tasks/fragments/list/?module=contabilidad&amp;sort=-module&amp;page=1"' in html


def test_progress_fragment_stops_polling_when_finished(ana):
    running = make_execution(user=ana, state=TaskState.PROGRESS, progress=30)
    done = make_execution(user=ana, state=TaskState.SUCCESS, progress=100)
    client = client_for(ana)
    live = client.get(reverse("taskboard:progress", args=[running.task_id]), headers=HX)
    assert live.status_code == 200 and b"hx-trigger" in live.content
    assert b"<html" not in live.content and b'aria-valuenow="30"' in live.content
    final = client.get(reverse("taskboard:progress", args=[done.task_id]), headers=HX)
    assert final.status_code == 286 and b"hx-trigger" not in final.content


def test_users_see_only_their_own_tasks_and_staff_see_all(ana, other, staff):
    mine = make_execution(user=ana, display_name="mine")
    theirs = make_execution(user=other, display_name="theirs")
    listing = client_for(ana).get(reverse("taskboard:list")).content
    assert mine.task_id.encode() in listing and theirs.task_id.encode() not in listing
    for url in urls_for(theirs)[2:]:
        assert client_for(ana).get(url).status_code == 404
        assert client_for(staff).get(url).status_code in (200, 286)
    everything = client_for(staff).get(reverse("taskboard:list")).content
    assert mine.task_id.encode() in everything and theirs.task_id.encode() in everything
    by_owner = client_for(staff).get(reverse("taskboard:list"), {"owner": "otro"}).content
    assert theirs.task_id.encode() in by_owner and mine.task_id.encode() not in by_owner


def test_filters_and_bad_parameters_never_fail(ana):
    failure = make_execution(
        user=ana, module="contabilidad", state=TaskState.FAILURE, display_name="Cierre contable"
    )
    success = make_execution(user=ana, module="nomina", state=TaskState.SUCCESS)
    client = client_for(ana)
    html = client.get(reverse("taskboard:list"), {"state": "FAILURE"}).content
    assert failure.task_id.encode() in html and success.task_id.encode() not in html
    html = client.get(reverse("taskboard:list"), {"q": "cierre"}).content
    assert failure.task_id.encode() in html and success.task_id.encode() not in html
    for params in (
        {"page": "abc"},
        {"page": "99999"},
        {"sort": "nope"},
        {"state": "BOGUS"},
        {"module": "\x00"},
        {"q": "x" * 1000},
    ):
        assert client.get(reverse("taskboard:list"), params).status_code == 200, params


def test_markup_in_names_args_and_errors_is_escaped(ana):
    execution = make_execution(
        user=ana,
        state=TaskState.FAILURE,
        display_name="<script>alert('name')</script>",
        args_summary='["<img src=x onerror=alert(1)>"]',
        exception_message="<svg onload=alert(2)>",
        progress_message="<b>bold</b>",
    )
    client = client_for(ana)
    for url in urls_for(execution):
        body = client.get(url).content
        assert b"<script>alert" not in body and b"<img src=x" not in body
        assert b"<svg onload" not in body and b"<b>bold</b>" not in body
    assert b"&lt;script&gt;" in client.get(urls_for(execution)[2]).content


def test_query_counts_are_pinned(ana, staff, django_assert_max_num_queries):
    users = [ana, staff, make_user(), make_user()]
    rows = make_history(users, count=300)
    mine = next(r for r in rows if r.user_id == ana.pk)
    for user in (ana, staff):
        client = client_for(user)
        # session + user + rows (LazyPaginator: no COUNT) + the typical durations of the
        # page's queued tasks (one query for all of them) + template modules
        # + the stats panel (one grouped aggregate, one running-now count)
        # + may this user launch a template (one EXISTS, for the "Launch a task" link)
        # + the headline counters (one conditional aggregate)
        with django_assert_max_num_queries(9):
            assert client.get(reverse("taskboard:dashboard")).status_code == 200
        with django_assert_max_num_queries(5):
            assert client.get(reverse("taskboard:list"), {"page": "2"}).status_code == 200
    client = client_for(ana)
    # mine is queued: its typical duration is one query (shared by its bar and ETA panel)
    with django_assert_max_num_queries(5):
        assert client.get(reverse("taskboard:detail", args=[mine.task_id])).status_code == 200
    with django_assert_max_num_queries(4):
        client.get(reverse("taskboard:progress", args=[mine.task_id]))


def test_cancel_needs_csrf(ana):
    execution = make_execution(user=ana, state=TaskState.PENDING)
    client = Client(enforce_csrf_checks=True)
    client.force_login(ana)
    response = client.post(reverse("taskboard:cancel", args=[execution.task_id]))
    assert response.status_code == 403
    assert TaskExecution.objects.get(pk=execution.pk).cancel_requested_at is None


def test_cancel_permissions(ana, other, staff):
    execution = make_execution(user=ana, state=TaskState.PENDING)
    url = reverse("taskboard:cancel", args=[execution.task_id])
    assert client_for(other).post(url).status_code == 404
    assert client_for(ana).post(url, {"terminate": "1"}).status_code == 403
    assert client_for(ana).get(url).status_code == 405
    assert TaskExecution.objects.get(pk=execution.pk).cancel_requested_at is None
    finished = make_execution(user=ana, state=TaskState.SUCCESS)
    done_url = reverse("taskboard:cancel", args=[finished.task_id])
    assert client_for(staff).post(done_url).status_code == 409


def test_owner_cancels_a_running_task_and_panels_refresh(worker, django_user_model):
    owner = django_user_model.objects.create_user("rosa", password="x-123456789")
    client = client_for(owner)
    with_owner = exportar_nominas.apply_async(
        (5,), {"user_id": owner.pk, "paginas": 400, "pausa": 0.05}
    )
    wait_until(
        lambda: TaskExecution.objects.filter(
            task_id=with_owner.id, state=TaskState.PROGRESS
        ).exists(),
        30,
    )
    response = client.post(reverse("taskboard:cancel", args=[with_owner.id]), headers=HX)
    assert response.status_code == 200
    assert json.loads(response["HX-Trigger"]) == {"taskboard:changed": {}}
    assert "Cancelling" in response.content.decode() or "Cancelando" in response.content.decode()
    wait_until(
        lambda: TaskExecution.objects.get(task_id=with_owner.id).state == TaskState.REVOKED, 10
    )
    execution = TaskExecution.objects.get(task_id=with_owner.id)
    assert execution.cancel_requested_by_id == owner.pk and execution.cancel_requested_at
    # A running task stops at its next progress report (cooperative cancel).
    assert execution.exception_message == "Cancelled while running"
    assert 0 < execution.progress < 100
    final = client.get(reverse("taskboard:progress", args=[with_owner.id]), headers=HX)
    assert final.status_code == 286


def test_staff_terminates_a_running_task(worker, django_user_model):
    boss = django_user_model.objects.create_user("jefe", password="x-123456789", is_staff=True)
    # A task that reports no progress for a long while: only terminate can stop it now.
    result = exportar_nominas.apply_async((6,), {"paginas": 2, "pausa": 30})
    wait_until(lambda: TaskExecution.objects.filter(task_id=result.id).exists(), 10)
    wait_until(lambda: TaskExecution.objects.get(task_id=result.id).state == TaskState.STARTED, 10)
    response = client_for(boss).post(
        reverse("taskboard:cancel", args=[result.id]), {"terminate": "1"}, headers=HX
    )
    assert response.status_code == 200
    wait_until(lambda: TaskExecution.objects.get(task_id=result.id).state == TaskState.REVOKED, 10)
    execution = TaskExecution.objects.get(task_id=result.id)
    assert execution.exception_message == "Terminated (SIGTERM)"
    assert execution.cancel_requested_by_id == boss.pk


def test_task_ids_that_cannot_exist_are_404_not_500(ana):
    client = client_for(ana)
    for task_id in ("%00", "a%00b", "x" * 300):
        assert client.get(f"/tasks/{task_id}/").status_code == 404
        assert client.get(f"/tasks/{task_id}/progress/").status_code == 404
        assert client.post(f"/tasks/{task_id}/cancel/").status_code == 404
