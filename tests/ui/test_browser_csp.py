"""F9 in a real browser: the Content-Security-Policy is effective and nothing on any page
needs what it blocks.

Chromium (the system's, through Playwright, never bypassing the policy) visits every page as
a visitor, a plain user and staff, listening to `securitypolicyviolation` events and the
console; htmx's polling, cancel (hx-confirm, the button removing itself) and the progress bars
keep working without inline code, inline styles or eval."""

from __future__ import annotations

import re
import time
from typing import Any

from django.contrib.auth.models import Group

from taskboard.models import TaskExecution, TaskState, TaskTemplate
from taskboard.tracking import sync_templates
from tests.browser import ARTIFACTS, PASSWORD, log_in, request_times, watch_console
from tests.factories import make_execution

# Recorded from the first script of every document on (an init script is the browser's
# own, not the page's: the policy does not apply to it).
LISTEN = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__violations.push(
    event.violatedDirective + " blocked " + (event.blockedURI || "inline") +
    " at " + event.sourceFile + ":" + event.lineNumber + " (" + event.sample + ")"
  );
});
"""


def violations(page: Any) -> list[str]:
    found: list[str] = page.evaluate("window.__violations || []")
    return found


def visit(page: Any, url: str, ready: str, seen: dict[str, list[str]]) -> None:
    page.goto(url)
    page.locator(ready).first.wait_for()
    # The fragments that load themselves (bell, workers panel) are swapped in too.
    page.wait_for_load_state("networkidle")
    seen[url] = violations(page)


def test_the_policy_blocks_what_it_should(live_server, db, page):
    """The policy is really in force: an injected inline script and style are refused."""
    page.add_init_script(LISTEN)
    page.goto(f"{live_server.url}/accounts/login/")
    page.evaluate(
        """() => {
        const script = document.createElement("script");
        script.textContent = "window.__inlineRan = true";
        document.head.appendChild(script);
        const div = document.createElement("div");
        div.innerHTML = '<span id="styled" style="color: rgb(255, 0, 0)">x</span>';
        document.body.appendChild(div);
        }"""
    )
    page.wait_for_function("window.__violations.length >= 2")
    assert page.evaluate("window.__inlineRan === true") is False
    color = page.evaluate("getComputedStyle(document.getElementById('styled')).color")
    assert color != "rgb(255, 0, 0)"
    found = violations(page)
    assert any(v.startswith("script-src") for v in found), found
    assert any(v.startswith("style-src") for v in found), found


def test_every_page_runs_without_a_violation(live_server, worker, django_user_model, page):
    base = live_server.url
    plain = django_user_model.objects.create_user("pia", password=PASSWORD)
    django_user_model.objects.create_superuser("jefa", password=PASSWORD)
    sync_templates()
    group = Group.objects.create(name="nominas")
    TaskTemplate.objects.get(key="nomina.consolidar").allowed_groups.add(group)
    plain.groups.add(group)
    mine = make_execution(
        user=plain,
        module="nomina",
        state=TaskState.PROGRESS,
        progress=40,
        display_name="informe\u202efdp.exe",
        progress_message="hoja \u2066\u05d0\u05d1\u2069",
    )
    failed = make_execution(
        user=plain, module="nomina", state=TaskState.FAILURE, exception_message="No cuadra"
    )
    page.add_init_script(LISTEN)
    problems = watch_console(page)
    page.on("dialog", lambda dialog: dialog.accept())
    seen: dict[str, list[str]] = {}

    # A visitor: the login pages.
    visit(page, f"{base}/accounts/login/", "form.login", seen)
    visit(page, f"{base}/admin/login/", "#login-form", seen)

    # A plain user: every page family, then a launch followed and cancelled through htmx.
    log_in(page, base, "pia", "/tasks/")
    pages = [
        (f"{base}/tasks/", "#task-list"),
        (f"{base}/tasks/{mine.task_id}/", ".task-progress"),
        (f"{base}/tasks/{failed.task_id}/", ".task-progress .badge.state-failure"),
        (f"{base}/tasks/notifications/", "main"),
        (f"{base}/tasks/notifications/preferences/", "main"),
        (f"{base}/tasks/templates/", "main"),
        (f"{base}/tasks/templates/nomina.consolidar/launch/", "#launch-form"),
        (f"{base}/nomina/", "#launch-exportar"),
    ]
    for url, ready in pages:
        visit(page, url, ready, seen)
    # The label's override character is gone, the bar has its width from the stylesheet.
    page.goto(f"{base}/tasks/{mine.task_id}/")
    assert "informefdp.exe" in page.content() and "\u202e" not in page.content()
    bar = page.locator(f"#progress-{mine.task_id} .bar").bounding_box()
    track = page.locator(f"#progress-{mine.task_id} .progress").bounding_box()
    assert bar and track and abs(bar["width"] / track["width"] - 0.40) < 0.02, (bar, track)

    # The dashboard polls (its pulse, every 5 s) with no trigger filter evaluated.
    beats = request_times(page, "/tasks/fragments/pulse/")
    page.goto(f"{base}/tasks/")
    beats.clear()
    deadline = time.monotonic() + 15
    while len(beats) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert len(beats) >= 2, f"the dashboard's pulse beat {len(beats)} times in 15 s"
    seen["dashboard polling"] = violations(page)

    # Launch the long export from /nomina/, watch it run, cancel it.
    page.goto(f"{base}/nomina/")
    page.click("#launch-exportar")
    export = page.locator('.launched-task[data-tarea="exportar"]')
    export.wait_for()
    export_id = export.get_attribute("data-task-id")
    export.locator(".badge.state-progress").wait_for(timeout=20_000)
    export.locator("button.cancel").click()  # hx-confirm: the dialog handler accepts
    export.locator(".badge.state-revoked").wait_for(timeout=15_000)
    # data-taskboard-remove-on-success (was hx-on): the button removed itself.
    assert export.locator("button.cancel").count() == 0
    assert TaskExecution.objects.get(task_id=export_id).state == TaskState.REVOKED
    seen["nomina launch and cancel"] = violations(page)
    page.click("form.logout button")
    page.wait_for_url(re.compile(r".*/accounts/login/$"))

    # Staff: the same pages (everyone's tasks, bulk selection), the module page, the admin.
    log_in(page, base, "jefa", "/tasks/")
    for url, ready in [
        *pages,
        (f"{base}/tasks/modules/nomina/", "main h1"),
        (f"{base}/admin/", "#content"),
        (f"{base}/admin/axes/accessattempt/", "#content"),
        (f"{base}/admin/taskboard/taskexecution/", "#content"),
        (f"{base}/admin/taskboard/taskexecution/{mine.pk}/change/", "#content"),
    ]:
        visit(page, url, ready, seen)
    page.goto(f"{base}/tasks/")
    page.locator("[data-bulk-row]").first.check()  # held while selected: no poll wipes it
    assert page.locator("[data-bulk-paused]").first.is_visible()
    seen["staff bulk selection"] = violations(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "csp-dashboard.png"), full_page=True)

    assert {url: found for url, found in seen.items() if found} == {}
    # The admin's pages have no favicon link of ours: the browser asks /favicon.ico (404).
    assert [problem for problem in problems if "/favicon.ico" not in problem] == []
