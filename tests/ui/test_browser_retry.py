"""Retry and template launch in a real browser (Chromium through Playwright), against the
live server and a real worker: retry a failed task from its detail page and watch the new
one succeed; launch a template through its form, once with a mistake, then right."""

from __future__ import annotations

import re
import uuid

from django.contrib.auth.models import Group

from taskboard.models import TaskExecution, TaskState, TaskTemplate
from taskboard.tracking import sync_templates
from taskboard.tracking.ownership import launched_by
from tests import worker_tasks
from tests.browser import ARTIFACTS, PASSWORD, log_in, watch_console
from tests.tracking.test_tracking import wait_for_state

DETAIL = re.compile(r".*/tasks/([0-9a-f-]{36})/$")


def test_retry_a_failed_task_then_launch_a_template(live_server, worker, django_user_model, page):
    rita = django_user_model.objects.create_user("rita", password=PASSWORD)
    problems = watch_console(page)
    base = live_server.url
    ARTIFACTS.mkdir(exist_ok=True)

    # A task that fails on its first run only.
    name = f"browser-{uuid.uuid4().hex[:8]}"
    with launched_by(rita):
        first = worker_tasks.fails_first_time.delay(name)
    old = wait_for_state(first.id, TaskState.FAILURE)

    log_in(page, base, "rita", f"/tasks/{old.task_id}/")
    page.locator(".task-progress .badge.state-failure").wait_for()
    page.click("#retry-button")
    page.wait_for_url(lambda url: DETAIL.match(url) is not None and old.task_id not in url)
    new_id = DETAIL.match(page.url).group(1)  # type: ignore[union-attr]
    # The progress fragment polls until the retry has run, then stops.
    page.locator(".task-progress .badge.state-success").wait_for(timeout=30_000)
    retry_of = page.locator(".retry-of a")
    assert retry_of.get_attribute("href") == f"/tasks/{old.task_id}/"
    assert page.locator("#retry-button").count() == 0
    page.screenshot(path=str(ARTIFACTS / "retry-new.png"), full_page=True)
    new = TaskExecution.objects.get(task_id=new_id)
    assert (new.state, new.retry_of_id, new.user_id) == (TaskState.SUCCESS, old.pk, rita.pk)

    retry_of.click()
    page.wait_for_url(f"{base}/tasks/{old.task_id}/")
    assert page.locator(".retried-as a").get_attribute("href") == f"/tasks/{new_id}/"
    page.locator(".retried-as .badge.state-success").wait_for()
    assert page.locator("#retry-button").count() == 0  # retried once: follow the new one
    page.screenshot(path=str(ARTIFACTS / "retry-old.png"), full_page=True)

    # Launch a template: rita's group may launch the test suite's "informe".
    sync_templates()
    group = Group.objects.create(name="informes")
    TaskTemplate.objects.get(key="pruebas.informe").allowed_groups.add(group)
    rita.groups.add(group)
    page.goto(f"{base}/tasks/")
    page.click(".launch-link a")
    page.wait_for_url(f"{base}/tasks/templates/")
    page.click('[data-template="pruebas.informe"] a')
    page.wait_for_url(f"{base}/tasks/templates/pruebas.informe/launch/")
    page.evaluate("window.__sameDocument = true")
    page.fill("input[name=titulo]", "Informe del navegador")
    page.fill("input[name=dia]", "2026-11-30")
    page.fill("textarea[name=etiquetas]", "esto no es JSON")
    page.click("#launch-form button[type=submit]")
    error = page.locator('[data-field="etiquetas"] .field-errors')
    error.wait_for()
    assert page.locator(".field-errors").count() == 1
    assert page.input_value("input[name=titulo]") == "Informe del navegador"  # kept
    assert page.evaluate("window.__sameDocument") is True  # htmx swapped the form in place
    assert not TaskExecution.objects.filter(template__key="pruebas.informe").exists()
    page.screenshot(path=str(ARTIFACTS / "launch-invalid.png"), full_page=True)

    page.fill("textarea[name=etiquetas]", '["a", "b"]')
    page.click("#launch-form button[type=submit]")
    page.wait_for_url(DETAIL)
    launched_id = DETAIL.match(page.url).group(1)  # type: ignore[union-attr]
    page.locator(".task-progress .badge.state-success").wait_for(timeout=30_000)
    launched = TaskExecution.objects.get(task_id=launched_id)
    assert (launched.user_id, launched.template_id) == (rita.pk, "pruebas.informe")
    assert '"etiquetas": ["a", "b"]' in launched.kwargs_summary
    page.screenshot(path=str(ARTIFACTS / "launch-done.png"), full_page=True)
    # Chromium logs every 4xx response, the invalid submit's 422 included: that one line,
    # exactly once, is expected; anything else is a problem.
    rejected = [
        problem
        for problem in problems
        if "the server responded with a status of 422 " in problem
        and problem.endswith(f"({base}/tasks/templates/pruebas.informe/launch/)")
    ]
    assert len(rejected) == 1, problems
    assert [problem for problem in problems if problem not in rejected] == []
