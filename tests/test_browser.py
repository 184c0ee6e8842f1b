"""The nomina page in a real browser: launch, live progress, cancel.

A real Chromium (the system's, driven by Playwright) against the live server of the test
process and a real Celery worker process on the same test database. Install the browser with
`apt-get install chromium` (Debian/Ubuntu); the test fails, never skips, without it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from taskboard.models import TaskExecution, TaskState
from tests.factories import make_execution
from tests.services import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM_HELP = (
    "The browser tests need Chromium at /usr/bin/chromium (or `chromium` on PATH). "
    "Install it with `apt-get install chromium` (Debian/Ubuntu); Playwright's own browser "
    "download is not used."
)
ARTIFACTS = ROOT / "artifacts"
PASSWORD = "browser-pass-123"


def chromium_path() -> str:
    if CHROMIUM.exists():
        return str(CHROMIUM)
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(CHROMIUM_HELP, pytrace=False)
    return found


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # plain blocking calls all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        # The users' language: the Spanish UI (the test reads CSS classes, not labels).
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="es-ES")
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
            # With Playwright's loop running, Django keeps the test's own database
            # connection apart from the thread's usual one: close it, or it outlives the
            # test and blocks dropping the test database.
            connections.close_all()


def watch_console(page: Any) -> list[str]:
    problems: list[str] = []

    def on_console(message: Any) -> None:
        if message.type not in ("error", "assert"):
            return
        where = message.location.get("url", "")
        problems.append(f"console.{message.type}: {message.text} ({where})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    return problems


def log_in(page: Any, base_url: str, username: str, next_path: str) -> None:
    page.goto(f"{base_url}/accounts/login/?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"{base_url}{next_path}")


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
    polls: list[float] = []
    page.on(
        "request",
        lambda request: (
            polls.append(time.monotonic()) if "/tasks/fragments/" in request.url else None
        ),
    )
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
