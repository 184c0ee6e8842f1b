"""Bulk actions for staff: cancel, retry and delete many executions, with a confirmation."""

from __future__ import annotations

import re

import pytest
from celery.app.control import Control
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from sgm.celery import app as celery_app
from sgm.nomina.tasks import consolidar_nomina
from taskboard.models import TaskExecution, TaskNotification, TaskState
from taskboard.services import bulk, cancel
from taskboard.services.launch import execution_retry
from tests.bulk_pages import CONFIRM, RUN, confirmation, run
from tests.external_app.facturacion import emitir_facturas
from tests.factories import client_for, make_execution
from tests.processes import wait_until


def test_urls_are_the_contract():
    assert reverse("taskboard:bulk_confirm") == CONFIRM
    assert reverse("taskboard:bulk_run") == RUN


@pytest.fixture
def revokes(monkeypatch):
    """Every revoke broadcast's task ids (the broadcast still goes out)."""
    sent: list[list[str]] = []
    original = Control.revoke

    def spy(self, task_id, *args, **kwargs):
        sent.append(list(task_id) if isinstance(task_id, list | tuple) else [task_id])
        return original(self, task_id, *args, **kwargs)

    monkeypatch.setattr(Control, "revoke", spy)
    return sent


# --- Who may, and what input is refused ------------------------------------------------------


def test_non_staff_get_403_on_every_bulk_endpoint(ana, client):
    execution = make_execution(user=ana, state=TaskState.PENDING)
    valid = {"action": "cancel", "ids": [str(execution.pk)]}
    user = client_for(ana)
    for params in (valid, {"action": "nope"}, {}):
        response = user.get(CONFIRM, params)
        assert response.status_code == 403 and response.content
        assert user.post(RUN, params).status_code == 403
    queued = {"action": "cancel", "scope": "queued", "module": "nomina"}
    assert user.get(CONFIRM, queued).status_code == 403
    assert user.post(RUN, {**queued, "low": "1", "high": str(execution.pk)}).status_code == 403
    # Anonymous: to the log-in page first.
    assert client.get(CONFIRM, valid).status_code == 302
    assert client.post(RUN, valid).status_code == 302
    assert TaskExecution.objects.get(pk=execution.pk).cancel_requested_at is None


def test_run_needs_a_post_with_csrf(staff):
    execution = make_execution(state=TaskState.PENDING)
    checked = Client(enforce_csrf_checks=True)
    checked.force_login(staff)
    page = checked.get(CONFIRM, {"action": "cancel", "ids": str(execution.pk)})
    assert b'name="csrfmiddlewaretoken"' in page.content and b'method="post"' in page.content
    response = checked.post(RUN, {"action": "cancel", "scope": "selected", "ids": execution.pk})
    assert response.status_code == 403
    assert client_for(staff).get(RUN).status_code == 405
    assert client_for(staff).post(CONFIRM, {"action": "cancel", "ids": "1"}).status_code == 405
    assert TaskExecution.objects.get(pk=execution.pk).cancel_requested_at is None


@pytest.mark.parametrize(
    "params",
    [
        {"action": "explode", "ids": "1"},
        {"ids": "1"},
        {"action": "cancel", "scope": "everything", "ids": "1"},
        {"action": "cancel"},  # nothing selected
        {"action": "cancel", "scope": "selected"},
        {"action": "cancel", "ids": "abc"},
        {"action": "cancel", "ids": ["1", "two"]},
        {"action": "cancel", "ids": "-1"},
        {"action": "cancel", "ids": "1.5"},
        {"action": "cancel", "ids": "1" * 19},
        {"action": "cancel", "ids": "１２"},  # full-width digits
        {"action": "cancel", "ids": "\x00"},
        {"action": "cancel", "ids": ""},
        {"action": "delete", "ids": [str(n) for n in range(1, 502)]},  # too many
        {"action": "cancel", "scope": "queued"},  # which module?
        {"action": "cancel", "scope": "queued", "module": "x" * 65},
        {"action": "cancel", "scope": "queued", "module": "a\x00b"},
        {"action": "delete", "scope": "queued", "module": "nomina"},
    ],
)
def test_bad_input_is_a_400_with_a_message(staff, params):
    make_execution(state=TaskState.PENDING)
    client = client_for(staff)
    for response in (client.get(CONFIRM, params), client.post(RUN, params)):
        assert response.status_code == 400, (params, response.content)
        # A page in the site's layout with the message (the bulk forms are plain forms).
        assert b'data-status="400"' in response.content and b'class="top"' in response.content
    assert not TaskExecution.objects.filter(cancel_requested_at__isnull=False).exists()


def test_thousands_of_fields_are_a_400_not_a_500(staff):
    client = Client(raise_request_exception=False)
    client.force_login(staff)
    ids = [str(n) for n in range(1, 2002)]
    assert client.get(CONFIRM, {"action": "cancel", "ids": ids}).status_code == 400
    assert client.post(RUN, {"action": "cancel", "ids": ids}).status_code == 400


@pytest.mark.parametrize(
    "extra",
    [{}, {"low": "1"}, {"low": "abc", "high": "9"}, {"low": "1", "high": "-2"}],
)
def test_a_run_without_the_confirmations_range_is_refused(staff, extra):
    make_execution(state=TaskState.PENDING)
    for scope in ({"scope": "filter"}, {"scope": "queued", "module": "nomina"}):
        response = client_for(staff).post(RUN, {"action": "cancel", **scope, **extra})
        assert response.status_code == 400 and response.content
    assert not TaskExecution.objects.filter(cancel_requested_at__isnull=False).exists()


def test_odd_module_names_are_no_error(staff, revokes):
    odd = make_execution(module="a/b", state=TaskState.PENDING)
    client = client_for(staff)
    counts, fields = confirmation(client, action="cancel", scope="queued", module="a/b")
    assert counts == {"total": 1, "affected": 1}
    page = client.post(RUN, dict(fields)).content.decode()
    assert 'href="/tasks/?module=a%2Fb"' in page
    assert TaskExecution.objects.get(pk=odd.pk).cancel_requested_at is not None
    counts, _ = confirmation(client, action="cancel", scope="queued", module="nadie")
    assert counts == {"total": 0, "affected": 0}


def test_the_way_back_keeps_the_lists_filter(staff, revokes):
    execution = make_execution(module="nomina", state=TaskState.PENDING)
    client = client_for(staff)
    _, fields = confirmation(
        client, action="cancel", ids=str(execution.pk), module="nomina", state="PENDING"
    )
    page = client.post(RUN, dict(fields)).content.decode()
    assert 'href="/tasks/?module=nomina&amp;state=PENDING"' in page


def test_ids_nobody_has_are_nothing_to_do(staff):
    client = client_for(staff)
    counts, fields = confirmation(client, action="cancel", ids=["123456", "999999999"])
    assert counts == {"total": 0, "affected": 0}
    page = client.get(CONFIRM, {"action": "cancel", "ids": "123456"}).content
    assert b'action="/tasks/bulk/run/"' not in page  # nothing to confirm
    assert fields == []
    posted = [("action", "cancel"), ("scope", "selected"), ("ids", "123456")]
    assert run(client, posted) == {"done": 0, "skipped": 0, "unsent": 0}


# --- The list and the module page offer it to staff only ------------------------------------


def test_list_has_checkboxes_and_the_bulk_form_for_staff_only(ana, staff):
    mine = make_execution(user=ana, state=TaskState.PENDING)
    staff_html = client_for(staff).get(reverse("taskboard:list"), {"module": "nomina"})
    page = staff_html.content.decode()
    assert f'name="ids" value="{mine.pk}"' in page and "data-bulk-form" in page
    assert 'action="/tasks/bulk/"' in page and 'name="module" value="nomina"' in page
    # While rows are selected the list does not refresh itself.
    assert 'data-taskboard-hold="live bulk"' in page
    own = client_for(ana).get(reverse("taskboard:list")).content.decode()
    assert mine.task_id in own
    assert 'name="ids"' not in own and "data-bulk-form" not in own
    assert 'data-taskboard-hold="live"' in own and 'data-taskboard-hold="live bulk"' not in own


def test_module_page_offers_cancel_all_queued(staff):
    make_execution(module="nomina", state=TaskState.PENDING)
    page = client_for(staff).get(reverse("taskboard:module", args=["nomina"])).content.decode()
    assert "data-bulk-module-cancel" in page
    found = re.search(r'<form [^>]*class="module-bulk">.*?</form>', page, re.S)
    assert found
    form = found.group(0)
    assert 'action="/tasks/bulk/"' in form and 'name="scope" value="queued"' in form
    assert 'name="module" value="nomina"' in form and 'name="action" value="cancel"' in form


# --- Cancel --------------------------------------------------------------------------------------


def test_cancel_selected_counts_acts_in_batches_and_skips_finished(staff, settings, revokes):
    settings.TASKBOARD_BULK_BATCH_SIZE = 3
    active = [make_execution(state=TaskState.PENDING) for _ in range(5)]
    active += [make_execution(state=TaskState.PROGRESS, progress=30) for _ in range(2)]
    finished = [make_execution(state=TaskState.SUCCESS) for _ in range(3)]
    untouched = make_execution(state=TaskState.PENDING)
    client = client_for(staff)
    ids = [str(e.pk) for e in active + finished]
    counts, fields = confirmation(client, action="cancel", ids=ids)
    assert counts == {"total": 10, "affected": 7}
    with CaptureQueriesContext(connection) as queries:
        result = run(client, fields)
    assert result == {"done": 7, "skipped": 3, "unsent": 0}
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 3  # one per batch of 3
    # One broadcast per batch, naming exactly the batch's tasks.
    assert sorted(len(ids) for ids in revokes) == [1, 3, 3]
    assert sorted(sum(revokes, [])) == sorted(e.task_id for e in active)
    for execution in active:
        execution.refresh_from_db()
        assert execution.cancel_requested_by_id == staff.pk and execution.cancel_requested_at
    for execution in [*finished, untouched]:
        execution.refresh_from_db()
        assert execution.cancel_requested_at is None


def test_cancel_all_matching_the_filter_touches_only_what_was_confirmed(staff, revokes):
    matching = [make_execution(module="contabilidad", state=TaskState.PENDING) for _ in range(4)]
    other_module = make_execution(module="nomina", state=TaskState.PENDING)
    client = client_for(staff)
    params = {"action": "cancel", "scope": "filter", "module": "contabilidad", "state": "PENDING"}
    counts, fields = confirmation(client, **params)
    assert counts == {"total": 4, "affected": 4}
    assert ("module", "contabilidad") in fields and ("state", "PENDING") in fields
    later = make_execution(module="contabilidad", state=TaskState.PENDING)  # after confirming
    assert run(client, fields) == {"done": 4, "skipped": 0, "unsent": 0}
    cancelled = set(
        TaskExecution.objects.filter(cancel_requested_at__isnull=False).values_list("pk", flat=True)
    )
    assert cancelled == {e.pk for e in matching}
    assert other_module.pk not in cancelled and later.pk not in cancelled


def test_module_cancel_all_queued_leaves_running_and_other_modules(staff, revokes):
    queued = [make_execution(module="nomina", state=state) for state in ("PENDING", "RECEIVED")]
    running = make_execution(module="nomina", state=TaskState.PROGRESS)
    elsewhere = make_execution(module="contabilidad", state=TaskState.PENDING)
    client = client_for(staff)
    counts, fields = confirmation(client, action="cancel", scope="queued", module="nomina")
    assert counts == {"total": 2, "affected": 2}
    done = client.post(RUN, dict(fields)).content.decode()
    assert 'href="/tasks/modules/nomina/"' in done
    assert sorted(sum(revokes, [])) == sorted(e.task_id for e in queued)
    asked = TaskExecution.objects.filter(cancel_requested_at__isnull=False)
    assert set(asked.values_list("pk", flat=True)) == {e.pk for e in queued}
    assert running.pk not in asked.values_list("pk", flat=True)
    assert elsewhere.pk not in asked.values_list("pk", flat=True)


def test_result_page_says_what_it_did(staff, revokes):
    make_execution(state=TaskState.SUCCESS)
    rows = [make_execution(state=TaskState.PENDING) for _ in range(2)] + [
        make_execution(state=TaskState.FAILURE)
    ]
    client = client_for(staff)
    _, fields = confirmation(client, action="cancel", ids=[str(e.pk) for e in rows])
    data: dict[str, list[str]] = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    page = client.post(RUN, data, headers={"Accept-Language": "en"}).content.decode()
    assert "Cancelled 2 executions" in page and "1 had already finished" in page


def test_services_are_for_staff_only(ana):
    rows = TaskExecution.objects.all()
    for service in (cancel.executions_cancel, bulk.executions_retry, bulk.executions_delete):
        with pytest.raises(PermissionDenied):
            service(rows=rows, by=ana)


# --- Delete --------------------------------------------------------------------------------------


def test_delete_removes_finished_executions_only(staff, settings):
    settings.TASKBOARD_BULK_BATCH_SIZE = 2
    finished = [
        make_execution(state=state)
        for state in ("SUCCESS", "FAILURE", "REVOKED", "LOST", "SUCCESS")
    ]
    kept = [make_execution(state=state) for state in ("PENDING", "RECEIVED", "STARTED", "PROGRESS")]
    kept.append(make_execution(state=TaskState.RETRY))
    TaskNotification.objects.create(user=staff, execution=finished[1], message="failed")
    retried = make_execution(state=TaskState.SUCCESS, retry_of=finished[1])
    client = client_for(staff)
    ids = [str(e.pk) for e in finished + kept]
    counts, fields = confirmation(client, action="delete", ids=ids)
    assert counts == {"total": 10, "affected": 5}
    assert run(client, fields) == {"done": 5, "skipped": 5, "unsent": 0}
    remaining = set(TaskExecution.objects.values_list("pk", flat=True))
    assert remaining == {e.pk for e in kept} | {retried.pk}
    assert not TaskNotification.objects.exists()
    retried.refresh_from_db()
    assert retried.retry_of_id is None


def test_delete_never_removes_running_executions_through_the_service(staff):
    running = make_execution(state=TaskState.PROGRESS)
    result = bulk.executions_delete(rows=TaskExecution.objects.all(), by=staff)
    assert (result.done, result.skipped) == (0, 1)
    assert TaskExecution.objects.filter(pk=running.pk).exists()


# --- Retry ----------------------------------------------------------------------------------------


def test_retry_delegates_to_execution_retry_and_skips_what_cannot_be(staff, monkeypatch):
    called: list[int] = []
    original = execution_retry

    def spy(*, execution, by, **options):
        called.append(execution.pk)
        return original(execution=execution, by=by, **options)

    monkeypatch.setattr(bulk, "execution_retry", spy)
    call = {"args": [2, 3], "kwargs": {}}
    retryable = [
        make_execution(task_name="tests.worker_tasks.add", state=state, call=call)
        for state in ("FAILURE", "LOST", "REVOKED")
    ]
    not_kept = make_execution(state=TaskState.FAILURE, call=None)
    others = [make_execution(state=state, call=call) for state in ("SUCCESS", "PENDING")]
    client = client_for(staff)
    ids = [str(e.pk) for e in [*retryable, not_kept, *others]]
    counts, fields = confirmation(client, action="retry", ids=ids)
    assert counts == {"total": 6, "affected": 3}
    assert run(client, fields) == {"done": 3, "skipped": 3, "unsent": 0}
    assert sorted(called) == sorted(e.pk for e in retryable)
    for execution in retryable:
        new = TaskExecution.objects.get(retry_of=execution)
        assert new.user_id == staff.pk and new.task_name == execution.task_name
        assert new.state == TaskState.PENDING and new.call == call
    # The same confirmation posted again (a reload) enqueues nothing twice.
    assert run(client, fields) == {"done": 0, "skipped": 6, "unsent": 0}
    assert len(called) == 3 and TaskExecution.objects.filter(retry_of__isnull=False).count() == 3
    counts, _ = confirmation(client, action="retry", ids=ids)
    assert counts == {"total": 6, "affected": 0}


# --- With a real worker -----------------------------------------------------------------------


def test_bulk_cancel_of_200_queued_tasks_revokes_exactly_those(spawn_worker, django_user_model):
    boss = django_user_model.objects.create_user("jefa-bulk", password="x-123456789", is_staff=True)
    # Up before the broadcast (a worker learns of revokes only while it is up), but reading
    # another queue: everything below stays queued in "bulk-held" meanwhile.
    worker = spawn_worker(queues=("bulk-idle",))
    held = "bulk-held"
    nomina = [
        consolidar_nomina.apply_async((n,), {"empleados": 1, "pausa": 0}, queue=held).id
        for n in range(200)
    ]
    others = [emitir_facturas.apply_async((n,), {"facturas": 1}, queue=held).id for n in range(20)]
    everything = nomina + others
    wait_until(lambda: TaskExecution.objects.filter(task_id__in=everything).count() == 220, 30)
    assert set(
        TaskExecution.objects.filter(task_id__in=everything).values_list("state", flat=True)
    ) == {TaskState.PENDING}
    finished = make_execution(module="nomina", state=TaskState.SUCCESS)

    client = client_for(boss)
    module_page = client.get(reverse("taskboard:module", args=["nomina"]))
    assert b"data-bulk-module-cancel" in module_page.content
    counts, fields = confirmation(client, action="cancel", scope="queued", module="nomina")
    assert counts == {"total": 200, "affected": 200}
    assert run(client, fields) == {"done": 200, "skipped": 0, "unsent": 0}
    asked = TaskExecution.objects.filter(cancel_requested_at__isnull=False)
    assert set(asked.values_list("task_id", flat=True)) == set(nomina)
    assert set(asked.values_list("cancel_requested_by", flat=True)) == {boss.pk}
    finished.refresh_from_db()
    assert finished.cancel_requested_at is None

    # Now a worker reads the queue: it drops the 200 revoked tasks and runs the others.
    celery_app.control.add_consumer(held, destination=[worker.name], reply=True, timeout=5)

    def states() -> dict[str, set[str]]:
        rows = TaskExecution.objects.filter(task_id__in=everything)
        found: dict[str, set[str]] = {"nomina": set(), "others": set()}
        for task_id, state in rows.values_list("task_id", "state"):
            found["nomina" if task_id in set(nomina) else "others"].add(state)
        return found

    wait_until(
        lambda: states() == {"nomina": {TaskState.REVOKED}, "others": {TaskState.SUCCESS}},
        timeout=90,
        interval=0.5,
    )
    revoked = TaskExecution.objects.filter(task_id__in=nomina)
    assert set(revoked.values_list("exception_message", flat=True)) == {"Revoked before it started"}
    assert not revoked.filter(started_at__isnull=False).exists()  # none of them ran
    assert not TaskExecution.objects.filter(
        task_id__in=others, cancel_requested_at__isnull=False
    ).exists()
