"""Errors that keep the page: a form with errors answers 422 with itself, filled in as it was
sent; a refused action (403, 409, 429, 503) answers a short message for beside the button
(HX-Trigger taskboard:message) and tells every panel to refresh (taskboard:changed); a page
refused or not found is a styled page in the site's layout; the detail page's status block
polls until the task is final and then stops (286)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.template.loader import get_template
from django.test import RequestFactory
from django.urls import reverse
from kombu.exceptions import OperationalError

from taskboard.middleware import TaskboardMiddleware
from taskboard.models import TaskExecution, TaskState
from taskboard.services.limits import LaunchRefused
from taskboard.services.workers.broker import BrokerUnavailable
from taskboard.tracking import sync_templates
from taskboard.tracking.calls import call_record
from tests import worker_tasks  # noqa: F401  (declares the "pruebas.informe" template)
from tests.factories import client_for, make_execution, make_history

HX = {"HX-Request": "true"}
EN = {"Accept-Language": "en"}
HEADER = b'<header class="top">'
LAUNCH_URL = reverse("taskboard:template_launch", args=["pruebas.informe"])
PAYROLL_URL = reverse("nomina:launch", args=["consolidar"])


def trigger(response: Any) -> dict[str, Any]:
    events: dict[str, Any] = json.loads(response["HX-Trigger"])
    return events


def assert_refused(response: Any, status: int) -> str:
    """A refused action: the status, a short plain message, shown beside the button, and
    every panel refreshes."""
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/plain")
    events = trigger(response)
    text = events["taskboard:message"]["text"]
    assert text and text == response.content.decode()
    assert events["taskboard:message"]["level"] == "error"
    assert "taskboard:changed" in events
    return str(text)


def failed_add(**fields: Any) -> TaskExecution:
    defaults: dict[str, Any] = {
        "task_name": "tests.worker_tasks.add",
        "display_name": "add",
        "module": "tests",
        "state": TaskState.FAILURE,
        "call": call_record([20, 22], {}),
        "exception_type": "ValueError",
        "exception_message": "no such period",
        "traceback": "Traceback (most recent call last):\n  ...\nValueError: no such period",
    }
    return make_execution(**{**defaults, **fields})


# --- Forms: 422, in place, with what was typed ---------------------------------------------


def test_template_launch_with_errors_is_a_422_form_keeping_what_was_typed(staff):
    sync_templates()
    client = client_for(staff)
    typed = {"titulo": "Informe de prueba", "dia": "no es una fecha", "copias": "3"}
    fragment = client.post(LAUNCH_URL, typed, headers={**HX, **EN})
    page = client.post(LAUNCH_URL, typed, headers=EN)
    for response in (fragment, page):
        assert response.status_code == 422
        html = response.content.decode()
        assert 'id="launch-form"' in html and 'value="Informe de prueba"' in html
        assert '<div class="field invalid" data-field="dia">' in html
        assert 'data-taskboard-swap-errors="422' in html  # htmx swaps it in place
    assert HEADER not in fragment.content and HEADER in page.content
    assert not TaskExecution.objects.exists()


@pytest.mark.parametrize("periodo_id", ["0", "", "-3", "abc"])
def test_payroll_period_0_is_a_422_form_in_place_of_itself(ana, periodo_id):
    client = client_for(ana)
    typed = {"periodo_id": periodo_id, "empleados": "12"}
    fragment = client.post(PAYROLL_URL, typed, headers={**HX, **EN})
    assert fragment.status_code == 422
    # The form again, morphed in place of itself: the page and its task list stay.
    assert (fragment["HX-Retarget"], fragment["HX-Reswap"]) == ("#nomina-launch", "morph:outerHTML")
    html = fragment.content.decode()
    assert 'id="nomina-launch"' in html and HEADER not in fragment.content
    if periodo_id:
        assert f'required value="{periodo_id}" aria-invalid="true"' in html  # as typed
    assert 'value="12"' in html and 'aria-invalid="true"' in html
    assert "The period must be a whole number" in html
    page = client.post(PAYROLL_URL, typed, headers=EN)
    assert page.status_code == 422 and HEADER in page.content
    assert 'value="12"' in page.content.decode() and 'id="task-list"' in page.content.decode()
    assert not TaskExecution.objects.exists()


def test_payroll_page_swaps_the_422_in(ana):
    html = client_for(ana).get(reverse("nomina:index")).content.decode()
    assert 'data-taskboard-swap-errors="422 409 429"' in html
    assert 'id="nomina-launch"' in html


def test_payroll_launch_over_the_limits_is_the_form_with_its_message(ana, settings):
    settings.TASKBOARD_MAX_UNFINISHED_PER_USER = 1
    make_execution(user=ana, state=TaskState.STARTED)
    response = client_for(ana).post(PAYROLL_URL, {"periodo_id": "4"}, headers={**HX, **EN})
    assert response.status_code == 409
    assert response["HX-Retarget"] == "#nomina-launch"
    assert 'value="4"' in response.content.decode() and 'role="alert"' in response.content.decode()


# --- Styled error pages --------------------------------------------------------------------


def test_403_and_404_are_pages_in_the_site_layout(ana, other):
    client = client_for(ana)
    module = client.get(reverse("taskboard:module", args=["nomina"]), headers=EN)
    assert module.status_code == 403 and HEADER in module.content
    assert b'data-status="403"' in module.content
    assert b"Only staff may see module statistics." in module.content
    theirs = make_execution(user=other)
    missing = client.get(reverse("taskboard:detail", args=[theirs.task_id]), headers=EN)
    assert missing.status_code == 404 and HEADER in missing.content
    assert b'data-status="404"' in missing.content and b"No such task." in missing.content
    nowhere = client.get("/tasks/no/such/page/here/", headers=EN)
    assert nowhere.status_code == 404 and HEADER in nowhere.content
    assert b"Resolver404" not in nowhere.content


def test_template_launch_refused_a_page_or_a_message(ana):
    sync_templates()  # ana is in none of the template's groups
    client = client_for(ana)
    page = client.get(LAUNCH_URL, headers=EN)
    assert page.status_code == 403 and HEADER in page.content
    assert b"You may not launch this task." in page.content
    assert_refused(client.post(LAUNCH_URL, {}, headers={**HX, **EN}), 403)


def test_500_page_renders_without_request_or_database():
    # No db fixture: any query would raise (pytest-django blocks the database here).
    html = get_template("500.html").render({})
    assert 'data-status="500"' in html and '<header class="top">' in html
    assert 'data-status="400"' in get_template("400.html").render({})


def test_bad_notification_page_is_a_styled_400(ana):
    response = client_for(ana).get(reverse("taskboard:notifications"), {"page": "0"})
    assert response.status_code == 400 and HEADER in response.content


# --- Refused actions: a message beside the button, and the panels refresh ------------------


def test_stale_cancel_is_a_409_message_and_the_panels_refresh(ana):
    done = make_execution(user=ana, state=TaskState.SUCCESS)
    response = client_for(ana).post(
        reverse("taskboard:cancel", args=[done.task_id]), headers={**HX, **EN}
    )
    assert assert_refused(response, 409) == "This task has already finished."


def test_refusals_of_a_plain_form_post_are_pages(ana, settings):
    client = client_for(ana)
    done = make_execution(user=ana, state=TaskState.SUCCESS)
    for action in ("cancel", "retry"):
        page = client.post(reverse(f"taskboard:{action}", args=[done.task_id]), headers=EN)
        assert page.status_code == 409 and HEADER in page.content
        assert f'href="/tasks/{done.task_id}/"'.encode() in page.content  # back to it
    running = make_execution(user=ana, state=TaskState.STARTED)
    url = reverse("taskboard:cancel", args=[running.task_id])
    forbidden = client.post(url, {"terminate": "1"}, headers=EN)
    assert forbidden.status_code == 403 and b'data-status="403"' in forbidden.content
    settings.TASKBOARD_LAUNCHES_PER_MINUTE = 0
    settings.TASKBOARD_MAX_UNFINISHED_PER_USER = 1  # the running one: no room for a retry
    old = failed_add(user=ana)
    over = client.post(reverse("taskboard:retry", args=[old.task_id]), headers=EN)
    assert over.status_code == 409 and HEADER in over.content


def test_terminate_by_a_plain_user_is_a_403_message(ana):
    running = make_execution(user=ana, state=TaskState.STARTED)
    response = client_for(ana).post(
        reverse("taskboard:cancel", args=[running.task_id]), {"terminate": "1"}, headers=HX
    )
    assert_refused(response, 403)
    assert TaskExecution.objects.get(pk=running.pk).cancel_requested_at is None


def test_cancel_with_the_broker_down_is_a_503_message(ana, monkeypatch):
    def unreachable(**kwargs: Any) -> bool:
        raise BrokerUnavailable("refused")

    monkeypatch.setattr("taskboard.views.executions.execution_cancel", unreachable)
    running = make_execution(user=ana, state=TaskState.STARTED)
    response = client_for(ana).post(
        reverse("taskboard:cancel", args=[running.task_id]), headers={**HX, **EN}
    )
    assert "broker" in assert_refused(response, 503)
    assert response["Retry-After"] == "10"


def test_cancel_from_the_detail_page_answers_its_status_block(ana):
    running = make_execution(user=ana, state=TaskState.STARTED)
    url = reverse("taskboard:cancel", args=[running.task_id])
    block = client_for(ana).post(url, headers={**HX, "HX-Target": "detail-status"})
    assert block.status_code == 200 and b'id="detail-status"' in block.content
    assert (
        b'data-state="cancelling"' in block.content and b'id="detail-cancel"' not in block.content
    )
    assert "taskboard:changed" in trigger(block)
    other = make_execution(user=ana, state=TaskState.STARTED)
    bar = client_for(ana).post(reverse("taskboard:cancel", args=[other.task_id]), headers=HX)
    assert b'id="progress-' in bar.content and b'id="detail-status"' not in bar.content


def test_retry_refusals_are_messages(ana, monkeypatch):
    client = client_for(ana)
    done = make_execution(user=ana, state=TaskState.SUCCESS)
    url = reverse("taskboard:retry", args=[done.task_id])
    assert_refused(client.post(url, headers={**HX, **EN}), 409)  # a success is not retried

    old = failed_add(user=ana)
    url = reverse("taskboard:retry", args=[old.task_id])
    problems: list[Exception] = [
        PermissionDenied(),
        LaunchRefused("Too many launches: wait a minute.", status=429, retry_after=30),
        BrokerUnavailable("refused", ("x",)),
    ]
    for problem, status in zip(problems, (403, 429, 503), strict=True):

        def refuse(*, problem: Exception = problem, **kwargs: Any) -> TaskExecution:
            raise problem

        monkeypatch.setattr("taskboard.views.executions.execution_retry", refuse)
        response = client.post(url, headers={**HX, **EN})
        assert_refused(response, status)
        if status == 429:
            assert response["Retry-After"] == "30"


def test_mark_read_of_no_such_notification_is_a_message_for_htmx(ana):
    url = reverse("taskboard:notification_read", args=[999999])
    assert_refused(client_for(ana).post(url, headers=HX), 404)
    assert client_for(ana).post(url).status_code == 404


def test_bulk_refusal_is_a_styled_page_or_a_message(ana, staff):
    confirm = reverse("taskboard:bulk_confirm")
    page = client_for(ana).get(confirm, {"action": "cancel", "ids": "1"})
    assert page.status_code == 403 and HEADER in page.content
    bad = client_for(staff).get(confirm, {"action": "explode"})
    assert bad.status_code == 400 and HEADER in bad.content
    assert_refused(client_for(staff).get(confirm, {"action": "explode"}, headers=HX), 400)


def test_a_dependency_down_during_an_action_reaches_the_user(ana):
    """The middleware's last-resort 503: an htmx action gets its message; a poll does not
    (its panel says itself that it is stale)."""
    middleware = TaskboardMiddleware(lambda request: None)  # type: ignore[arg-type,return-value]
    factory = RequestFactory()
    for method, shown in (("post", True), ("get", False)):
        request = getattr(factory, method)("/tasks/x/cancel/", headers=HX)
        request.htmx = True
        request.user = ana
        response = middleware.process_exception(request, OperationalError("down"))
        assert response is not None and response.status_code == 503
        assert ("taskboard:message" in response.get("HX-Trigger", "")) is shown


# --- The detail page's status block --------------------------------------------------------


def test_status_block_polls_until_final_then_stops(ana):
    running = make_execution(user=ana, state=TaskState.PROGRESS, progress=40)
    client = client_for(ana)
    url = reverse("taskboard:status", args=[running.task_id])
    live = client.get(url, headers=HX)
    html = live.content.decode()
    assert live.status_code == 200 and "<html" not in html
    assert 'id="detail-status"' in html and 'hx-swap="morph:outerHTML"' in html
    assert 'hx-trigger="every 2s, taskboard:changed from:body"' in html
    assert 'id="detail-cancel"' in html
    # One poller: the bar inside the block does not poll itself.
    assert html.count("hx-trigger") == 1
    assert 'data-state="progress"' in html and 'aria-valuetext="40 %' in html
    assert 'role="progressbar"' in html and 'aria-label="' in html

    failed = failed_add(user=ana)
    final = client.get(reverse("taskboard:status", args=[failed.task_id]), headers=HX)
    html = final.content.decode()
    assert final.status_code == 286 and "hx-trigger" not in html and "hx-get" not in html
    assert "no such period" in html and "Traceback" in html
    assert 'id="retry-button"' in html and 'id="detail-cancel"' not in html
    assert 'data-state="failure"' in html and "<time datetime=" in html


def test_detail_page_holds_the_status_block_and_the_progress_url_still_works(ana):
    running = make_execution(user=ana, state=TaskState.STARTED)
    client = client_for(ana)
    page = client.get(reverse("taskboard:detail", args=[running.task_id])).content.decode()
    assert page.count('id="detail-status"') == 1 and page.count("hx-trigger=") >= 1
    assert f'hx-get="/tasks/{running.task_id}/status/"' in page
    assert f'hx-get="/tasks/{running.task_id}/progress/"' not in page
    bar = client.get(reverse("taskboard:progress", args=[running.task_id]), headers=HX)
    assert bar.status_code == 200
    assert f'hx-get="/tasks/{running.task_id}/progress/"'.encode() in bar.content


def test_query_counts_are_pinned(ana, django_assert_max_num_queries):
    make_history([ana], 300)
    running = make_execution(user=ana, state=TaskState.PROGRESS, progress=10)
    failed = failed_add(user=ana)
    client = client_for(ana)
    for execution in (running, failed):
        # session + user + execution + typical duration (ETA) + retried yet? (failed only)
        with django_assert_max_num_queries(5):
            assert client.get(reverse("taskboard:detail", args=[execution.task_id])).status_code
        with django_assert_max_num_queries(4):
            client.get(reverse("taskboard:status", args=[execution.task_id]), headers=HX)
    with django_assert_max_num_queries(4):
        client.get(reverse("taskboard:progress", args=[running.task_id]), headers=HX)
    done = make_execution(user=ana, state=TaskState.SUCCESS)
    with django_assert_max_num_queries(4):  # session + user + execution + the cancel's update
        client.post(reverse("taskboard:cancel", args=[done.task_id]), headers=HX)


def test_a_payroll_launch_that_goes_out_clears_the_forms_message(
    ana, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(ana).post(
            PAYROLL_URL, {"periodo_id": "5", "empleados": "7"}, headers=HX
        )
    assert response.status_code == 200 and len(callbacks) == 1
    html = response.content.decode()
    assert 'class="launched-task"' in html
    assert 'id="nomina-launch" hx-swap-oob="morph"' in html  # morph: idiomorph's outerHTML
    assert 'value="5"' in html and 'value="7"' in html and 'role="alert"' not in html
    assert 'name="csrfmiddlewaretoken"' in html
