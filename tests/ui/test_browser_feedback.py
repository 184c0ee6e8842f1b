"""Feedback in a real browser (Chromium through Playwright, against the live server):
bad input keeps the page (header, form, message), DEBUG on and off; a task watched to
FAILURE on its detail page shows its error and Retry without a reload, and polling stops;
a stale Cancel (the task finished meanwhile) says so beside the button and the row or status
refreshes; a broker that cannot be reached says so too."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone, translation

from taskboard.models import TaskExecution, TaskState, TaskTemplate
from taskboard.tracking import sync_templates
from taskboard.tracking.ownership import launched_by
from taskboard.tracking.stamps import stamp_bump
from taskboard.views.executions import cancel_unsent_message
from tests import worker_tasks
from tests.browser import ARTIFACTS, PASSWORD, log_in, request_times, watch_console
from tests.factories import make_execution
from tests.faults.fakes import celery_on

MESSAGE = "#taskboard-messages [data-taskboard-message]"
CLOSED_PORT_BROKER = "redis://127.0.0.1:9/0"  # nothing listens on the discard port


def expected_rejections(problems: list[str], status: int) -> list[str]:
    """Chromium logs every 4xx/5xx response as a console error, and htmx a refused action's
    ("Response Status Error Code 409 from …"): those of the status asked for are expected;
    anything else is a problem."""
    expected = (f"status of {status} ", f"Response Status Error Code {status} from ")
    return [p for p in problems if not any(words in p for words in expected)]


def same_document(page: Any) -> bool:
    return bool(page.evaluate("window.__sameDocument === true"))


def stale(execution: TaskExecution) -> None:
    """The task finishes behind the page's back (between two of its polls)."""
    now = timezone.now()
    TaskExecution.objects.filter(pk=execution.pk).update(
        state=TaskState.SUCCESS, progress=100, finished_at=now, duration=1.0
    )
    stamp_bump()  # as the worker's recorder does after its write


def live_off(page: Any, base: str) -> None:
    """The live switch off: polls wait, so the page stays stale until an action refreshes
    it (taskboard:changed is not a poll)."""
    page.goto(f"{base}/tasks/")
    page.evaluate("localStorage.setItem('taskboard.live', 'off')")


@pytest.mark.parametrize("debug", [True, False], ids=["debug-on", "debug-off"])
def test_bad_input_keeps_header_form_and_message(
    live_server, worker, django_user_model, page, settings, debug
):
    settings.DEBUG = debug
    lola = django_user_model.objects.create_user("lola", password=PASSWORD)
    sync_templates()
    group = Group.objects.create(name="informes")
    TaskTemplate.objects.get(key="pruebas.informe").allowed_groups.add(group)
    lola.groups.add(group)
    problems = watch_console(page)
    base = live_server.url
    ARTIFACTS.mkdir(exist_ok=True)

    # A template's launch form with a value the server refuses.
    log_in(page, base, "lola", "/tasks/templates/pruebas.informe/launch/")
    page.evaluate("window.__sameDocument = true")
    page.fill("input[name=titulo]", "Informe con errores")
    page.fill("input[name=dia]", "2026-11-30")
    page.fill("textarea[name=etiquetas]", "esto no es JSON")
    page.click("#launch-form button[type=submit]")
    page.locator('[data-field="etiquetas"] .field-errors').wait_for()
    assert page.locator("header.top").is_visible() and page.locator("#launch-form").is_visible()
    assert page.input_value("input[name=titulo]") == "Informe con errores"
    assert same_document(page)
    page.screenshot(path=str(ARTIFACTS / f"feedback-launch-422-{debug}.png"), full_page=True)

    # The payroll page with period 0: its form comes back in place, with the message.
    page.goto(f"{base}/nomina/")
    page.evaluate("window.__sameDocument = true")
    page.fill("input[name=periodo_id]", "0")
    page.fill("input[name=empleados]", "12")
    page.click("#launch-consolidar")
    page.locator("#nomina-launch-error").wait_for()
    assert page.locator("header.top").is_visible() and page.locator("#nomina-launch").is_visible()
    assert page.locator("#task-list").count() == 1  # the page's list is still there
    assert page.input_value("input[name=periodo_id]") == "0"
    assert page.input_value("input[name=empleados]") == "12"
    assert page.get_attribute("input[name=periodo_id]", "aria-invalid") == "true"
    assert same_document(page)
    page.screenshot(path=str(ARTIFACTS / f"feedback-payroll-422-{debug}.png"), full_page=True)
    assert not TaskExecution.objects.exists()

    # Put right, it launches: the task appears and the form's message goes.
    page.fill("input[name=periodo_id]", "3")
    page.click("#launch-consolidar")
    page.locator(".launched-task").wait_for()
    assert page.locator("#nomina-launch-error").count() == 0
    assert page.get_attribute("input[name=periodo_id]", "aria-invalid") is None
    assert page.input_value("input[name=empleados]") == "12" and same_document(page)
    assert expected_rejections(problems, 422) == [], problems


def test_a_task_watched_to_failure_shows_error_and_retry_then_stops_polling(
    live_server, worker, django_user_model, page
):
    rita = django_user_model.objects.create_user("rita", password=PASSWORD)
    problems = watch_console(page)
    base = live_server.url
    name = f"feedback-{uuid.uuid4().hex[:8]}"
    # It fails on its first run, a few seconds from now: the page is open before it ends.
    with launched_by(rita):
        task = worker_tasks.fails_first_time.apply_async((name,), countdown=4)
    log_in(page, base, "rita", f"/tasks/{task.id}/")
    page.evaluate("window.__sameDocument = true")
    assert page.locator("#detail-status #detail-cancel").is_visible()  # not final yet
    polls = request_times(page, f"/tasks/{task.id}/status/")

    status = page.locator("#detail-status")
    status.locator(".badge.state-failure").wait_for(timeout=30_000)
    assert "the first run fails" in status.locator(".detail-error").inner_text()
    assert status.locator("#retry-button").is_visible()
    assert status.locator("#detail-cancel").count() == 0
    assert status.locator(".progress").get_attribute("data-state") == "failure"
    assert status.get_attribute("hx-trigger") is None
    assert same_document(page) and len(polls) >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "feedback-detail-failure.png"), full_page=True)
    seen = len(polls)
    page.wait_for_timeout(5_000)  # two and a half polling periods
    assert len(polls) == seen, "the status block kept polling after the task ended"
    assert problems == []


def test_a_stale_cancel_says_so_and_refreshes(live_server, django_user_model, page):
    tom = django_user_model.objects.create_user("tom", password=PASSWORD)
    problems = watch_console(page)
    page.on("dialog", lambda dialog: dialog.accept())
    base = live_server.url
    log_in(page, base, "tom", "/tasks/")
    live_off(page, base)

    # From the list: its row's Cancel, after the task finished.
    listed = make_execution(user=tom, state=TaskState.STARTED, progress=30)
    page.goto(f"{base}/tasks/")
    row = page.locator(f"#task-{listed.task_id}")
    row.locator("button.cancel").wait_for()
    stale(listed)
    row.locator("button.cancel").click()
    page.locator(MESSAGE).wait_for()
    assert page.locator(MESSAGE).count() == 1
    assert page.locator("#taskboard-messages").get_attribute("role") == "status"
    page.locator(f"#task-{listed.task_id} .badge.state-success").wait_for()  # refreshed
    assert page.locator(f"#task-{listed.task_id} button.cancel").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "feedback-stale-cancel-list.png"), full_page=True)

    # From the detail page: the status block's Cancel.
    shown = make_execution(user=tom, state=TaskState.STARTED, progress=30)
    page.goto(f"{base}/tasks/{shown.task_id}/")
    page.locator("#detail-cancel").wait_for()
    stale(shown)
    page.keyboard.press("Escape")  # closes any earlier message
    page.click("#detail-cancel")
    page.locator(MESSAGE).wait_for()
    page.locator("#detail-status .badge.state-success").wait_for()  # refreshed, once more
    assert page.locator("#detail-cancel").count() == 0
    page.screenshot(path=str(ARTIFACTS / "feedback-stale-cancel-detail.png"), full_page=True)
    assert TaskExecution.objects.get(pk=shown.pk).cancel_requested_at is None
    assert expected_rejections(problems, 409) == [], problems


def test_a_broker_that_cannot_be_reached_says_so(live_server, django_user_model, page):
    una = django_user_model.objects.create_user("una", password=PASSWORD)
    problems = watch_console(page)
    page.on("dialog", lambda dialog: dialog.accept())
    base = live_server.url
    running = make_execution(user=una, state=TaskState.STARTED, progress=10)
    log_in(page, base, "una", f"/tasks/{running.task_id}/")
    page.evaluate("window.__sameDocument = true")
    with celery_on(CLOSED_PORT_BROKER):
        page.click("#detail-cancel")
        message = page.locator(MESSAGE)
        message.wait_for(timeout=20_000)
    with translation.override("es"):  # the page's language
        assert message.inner_text().strip().startswith(cancel_unsent_message()[:40])
    assert same_document(page) and page.locator("header.top").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "feedback-broker-503.png"), full_page=True)
    assert TaskExecution.objects.get(pk=running.pk).cancel_requested_at is not None
    assert expected_rejections(problems, 503) == [], problems


def test_my_pages_fit_a_phone(live_server, django_user_model, page):
    """At 390 px the detail page (a long traceback and result), the launch form, the
    preferences and the error pages scroll only vertically."""
    vera = django_user_model.objects.create_user("vera", password=PASSWORD)
    sync_templates()
    group = Group.objects.create(name="informes")
    TaskTemplate.objects.get(key="pruebas.informe").allowed_groups.add(group)
    vera.groups.add(group)
    failed = make_execution(
        user=vera,
        state=TaskState.FAILURE,
        exception_type="ValueError",
        exception_message="x" * 300,
        traceback="Traceback (most recent call last):\n" + "  File " + "y" * 400,
        result_summary="z" * 400,
        worker="celery@a-very-long-worker-hostname.internal.example.com",
    )
    running = make_execution(user=vera, state=TaskState.PROGRESS, progress=40)
    page.set_viewport_size({"width": 390, "height": 844})
    base = live_server.url
    log_in(page, base, "vera", f"/tasks/{failed.task_id}/")
    page.click("#detail-traceback summary")
    ARTIFACTS.mkdir(exist_ok=True)
    pages = [
        ("detail-failed", f"/tasks/{failed.task_id}/"),
        ("detail-running", f"/tasks/{running.task_id}/"),
        ("launch", "/tasks/templates/pruebas.informe/launch/"),
        ("preferences", "/tasks/notifications/preferences/"),
        ("403", "/tasks/modules/nomina/"),  # vera is not staff
        ("404", "/tasks/no-such-task/"),
    ]
    for index, (name, path) in enumerate(pages):
        if index:
            page.goto(f"{base}{path}")
        fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.screenshot(path=str(ARTIFACTS / f"feedback-phone-{name}.png"), full_page=True)
        assert fits, path


def test_the_status_block_keeps_focus_and_open_traceback_across_polls(
    live_server, django_user_model, page
):
    """The status block morphs: the Cancel button keeps focus over two polls, and a retrying
    task's open traceback stays open."""
    ivo = django_user_model.objects.create_user("ivo", password=PASSWORD)
    running = make_execution(
        user=ivo,
        state=TaskState.RETRY,
        progress=20,
        exception_type="TimeoutError",
        exception_message="the bank did not answer",
        traceback="Traceback (most recent call last):\n  ...\nTimeoutError",
    )
    base = live_server.url
    problems = watch_console(page)
    log_in(page, base, "ivo", f"/tasks/{running.task_id}/")
    polls = request_times(page, f"/tasks/{running.task_id}/status/")
    page.click("#detail-traceback summary")
    page.focus("#detail-cancel")
    TaskExecution.objects.filter(pk=running.pk).update(progress=60)
    page.wait_for_selector("#detail-status [aria-valuenow='60']")  # a poll morphed it
    seen = len(polls)
    for _ in range(40):  # and one more poll, at most 10 s
        if len(polls) > seen:
            break
        page.wait_for_timeout(250)
    assert len(polls) > seen
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.activeElement && document.activeElement.id") == "detail-cancel"
    assert page.locator("#detail-traceback").get_attribute("open") is not None
    assert problems == []
