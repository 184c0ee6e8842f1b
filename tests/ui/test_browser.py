"""The nomina page in a real browser: launch, live progress, cancel.

A real Chromium (the system's, driven by Playwright) against the live server of the test
process and a real Celery worker process on the same test database. Install the browser with
`apt-get install chromium` (Debian/Ubuntu); the test fails, never skips, without it.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

from django.utils import timezone
from playwright.sync_api import expect

from taskboard.models import TaskExecution, TaskState
from tests.browser import ARTIFACTS, PASSWORD, log_in, request_times, watch_console
from tests.factories import make_execution


def launched(page: Any, tarea: str) -> Any:
    return page.locator(f'.launched-task[data-tarea="{tarea}"]')


def progress_values_until_final(task: Any, timeout: float) -> list[int]:
    """aria-valuenow of the task's bar, sampled as htmx swaps it, until it is final."""
    values: list[int] = []
    bar = task.locator("[role=progressbar]")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = int(bar.get_attribute("aria-valuenow"))
        if not values or values[-1] != value:
            values.append(value)
        if task.locator(".badge.state-success").count():
            values.append(int(bar.get_attribute("aria-valuenow")))
            return values
        time.sleep(0.2)
    raise AssertionError(f"the task did not succeed within {timeout}s; bar went {values}")


def test_nomina_page_launches_follows_and_cancels_tasks(
    live_server, worker, django_user_model, page
):
    nora = django_user_model.objects.create_user("nora", password=PASSWORD)
    problems = watch_console(page)
    page.on("dialog", lambda dialog: dialog.accept())
    base = live_server.url

    log_in(page, base, "nora", "/nomina/")
    assert (
        page.locator("#task-list").get_attribute("hx-get") == "/tasks/fragments/list/?module=nomina"
    )
    # A marker that a reload would wipe: everything below happens in this one page.
    page.evaluate("window.__sameDocument = true")

    # Payroll of 100 employees, 50 ms each: about 5 s, long enough to watch the bar move.
    page.fill("input[name=periodo_id]", "7")
    page.fill("input[name=empleados]", "100")
    page.click("#launch-consolidar")
    consolidation = launched(page, "consolidar")
    consolidation.wait_for()
    task_id = consolidation.get_attribute("data-task-id")
    values = progress_values_until_final(consolidation, timeout=40)
    assert values == sorted(values) and values[-1] == 100, values
    assert any(0 < value < 100 for value in values), f"no intermediate progress seen: {values}"
    assert len(set(values)) >= 3, values
    assert consolidation.locator(".cancel").is_hidden()  # nothing left to cancel
    execution = TaskExecution.objects.get(task_id=task_id)
    assert execution.state == TaskState.SUCCESS and execution.user_id == nora.pk
    assert execution.module == "nomina" and execution.args_summary.startswith("[7")
    # The embedded list heard taskboard:changed (or polled) and shows the task.
    page.locator(f"#task-list #task-{task_id} .badge.state-success").wait_for()

    # The long export (600 pages of 0.5 s): cancel it once it runs.
    page.click("#launch-exportar")
    export = launched(page, "exportar")
    export.wait_for()
    export_id = export.get_attribute("data-task-id")
    export.locator(".badge.state-progress").wait_for(timeout=20_000)
    export.locator("button.cancel").click()  # hx-confirm: the dialog handler accepts
    export.locator(".badge.state-revoked").wait_for(timeout=10_000)
    assert TaskExecution.objects.get(task_id=export_id).state == TaskState.REVOKED
    # The embedded list catches up by itself (its next poll at the latest).
    page.locator(f"#task-list #task-{export_id} .badge.state-revoked").wait_for()

    assert page.evaluate("window.__sameDocument") is True
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "nomina.png"), full_page=True)
    page.goto(f"{base}/tasks/")
    page.locator(f"#task-list #task-{export_id}").wait_for()
    # The workers panel loads by itself after the page, from the workers' own heartbeats.
    page.locator(f'#workers-panel tr.online[data-worker="{worker.name}"]').wait_for()
    assert page.locator("#workers-panel [data-source]").get_attribute("data-source") == "heartbeats"
    page.screenshot(path=str(ARTIFACTS / "tasks.png"), full_page=True)
    assert problems == []


def test_module_page_for_staff(live_server, django_user_model, page):
    django_user_model.objects.create_user("jefa", password=PASSWORD, is_staff=True)
    for duration in (2.0, 3.5, 5.0):
        make_execution(module="nomina", state=TaskState.SUCCESS, duration=duration)
    make_execution(module="nomina", state=TaskState.FAILURE, exception_message="No cuadra")
    problems = watch_console(page)
    log_in(page, live_server.url, "jefa", "/tasks/modules/nomina/")
    page.locator("svg").first.wait_for()
    assert "No cuadra" in page.content()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "module.png"), full_page=True)
    assert problems == []


def test_live_switch_pauses_and_resumes_polling(live_server, django_user_model, page):
    django_user_model.objects.create_user("lupe", password=PASSWORD)
    problems = watch_console(page)
    polls = request_times(page, "/tasks/fragments/")
    log_in(page, live_server.url, "lupe", "/tasks/")
    page.wait_for_timeout(5_500)
    assert polls, "the panels did not poll while live"

    page.uncheck("[data-taskboard-live]")
    paused_at = time.monotonic()
    page.wait_for_timeout(11_000)
    assert [t for t in polls if t > paused_at + 0.5] == [], "polling went on while paused"

    page.reload()  # the choice is remembered by this browser
    assert not page.is_checked("[data-taskboard-live]")
    resumed_at = time.monotonic()
    page.check("[data-taskboard-live]")
    page.wait_for_timeout(1_000)
    assert [t for t in polls if t > resumed_at], "switching back on did not refresh at once"
    assert problems == []


PANEL_URLS = (
    "/tasks/fragments/list/",
    "/tasks/fragments/stats/",
    "/tasks/fragments/headline/",
    "/tasks/fragments/workers/",
    "/tasks/notifications/bell/",
)


def test_the_dashboard_polls_once_per_beat_and_refreshes_on_a_change(
    live_server, django_user_model, page
):
    lupe = django_user_model.objects.create_user("lupe", password=PASSWORD)
    problems = watch_console(page)
    panel_requests: list[float] = []
    refreshes: list[float] = []  # pulses that answered "changed"
    page.on(
        "request",
        lambda r: (
            panel_requests.append(time.monotonic()) if any(u in r.url for u in PANEL_URLS) else None
        ),
    )
    page.on(
        "response",
        lambda r: (
            refreshes.append(time.monotonic())
            if "/tasks/fragments/pulse/" in r.url and r.headers.get("hx-trigger")
            else None
        ),
    )
    pulses = request_times(page, "/tasks/fragments/pulse/")
    log_in(page, live_server.url, "lupe", "/tasks/")
    page.wait_for_timeout(6_500)  # each panel's first poll-like request (a load) goes
    quiet_from = time.monotonic()
    page.wait_for_timeout(11_000)
    assert len([t for t in pulses if t > quiet_from]) >= 2, "the pulse did not beat"
    unprompted = [
        t for t in panel_requests if t > quiet_from and not any(0 <= t - r < 2 for r in refreshes)
    ]
    assert unprompted == [], "panels polled by themselves beside the pulse"

    make_execution(user=lupe, display_name="Cierre de caja", state=TaskState.STARTED)
    page.locator("#task-list", has_text="Cierre de caja").wait_for(timeout=8_000)
    assert problems == []


def test_relative_times_keep_true_in_the_browser(live_server, django_user_model, page):
    lupe = django_user_model.objects.create_user("lupe", password=PASSWORD)
    started = timezone.now() - timedelta(minutes=2)
    task = make_execution(user=lupe, state=TaskState.STARTED, started_at=started)
    page.clock.install()  # the page's timers and Date follow the test's clock
    log_in(page, live_server.url, "lupe", "/tasks/")
    when = page.locator(f"#task-{task.task_id} time[data-taskboard-relative]")
    assert "2 minutos" in when.inner_text()
    page.clock.fast_forward("03:00")  # three minutes later, no render in between
    expect(when).to_have_text(re.compile("5 minutos"), timeout=5_000)
