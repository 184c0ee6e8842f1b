"""Bulk cancel in a real browser: select queued tasks in the list, confirm, see the result.

Real Chromium (Playwright) against the live server; see tests/browser.py.
"""

from __future__ import annotations

import time

from taskboard.models import TaskExecution, TaskState
from tests.browser import ARTIFACTS, PASSWORD, log_in, request_times, watch_console
from tests.factories import make_execution


def test_staff_bulk_cancels_selected_queued_tasks(live_server, django_user_model, page):
    boss = django_user_model.objects.create_user("jefa", password=PASSWORD, is_staff=True)
    chosen = [
        make_execution(module="nomina", state=TaskState.PENDING, display_name=f"Cola {n}")
        for n in range(3)
    ]
    left_alone = make_execution(module="nomina", state=TaskState.PENDING, display_name="Otra")
    problems = watch_console(page)
    polls = request_times(page, "/fragments/list/")
    base = live_server.url
    log_in(page, base, "jefa", "/tasks/")

    for execution in chosen:
        page.check(f"#task-{execution.task_id} input[name=ids]")
    assert page.locator("[data-bulk-count]").inner_text() == "3"
    assert page.locator("[data-bulk-paused]").is_visible()
    # The list holds still while tasks are selected: no refresh wipes the selection.
    held_at = time.monotonic()
    page.wait_for_timeout(6_500)
    assert [t for t in polls if t > held_at] == [], "the list refreshed while rows were selected"
    for execution in chosen:
        assert page.is_checked(f"#task-{execution.task_id} input[name=ids]")
    assert not page.is_checked(f"#task-{left_alone.task_id} input[name=ids]")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "bulk-list.png"), full_page=True)
    page.select_option("[data-bulk-action]", "cancel")
    page.click("[data-bulk-submit]")
    confirm = page.locator(".bulk-confirm")
    confirm.wait_for()
    assert confirm.get_attribute("data-affected") == "3"
    assert confirm.get_attribute("data-total") == "3"
    page.screenshot(path=str(ARTIFACTS / "bulk-confirm.png"), full_page=True)
    page.click("[data-bulk-confirm]")
    done = page.locator(".bulk-done")
    done.wait_for()
    assert done.get_attribute("data-done") == "3" and done.get_attribute("data-skipped") == "0"
    page.screenshot(path=str(ARTIFACTS / "bulk.png"), full_page=True)

    asked = TaskExecution.objects.filter(cancel_requested_at__isnull=False)
    assert set(asked.values_list("pk", flat=True)) == {e.pk for e in chosen}
    assert set(asked.values_list("cancel_requested_by", flat=True)) == {boss.pk}

    # Back in the list: the three are being cancelled, the fourth is untouched, and the
    # list refreshes itself again (nothing is selected any more).
    page.click(".bulk-done a")
    for execution in chosen:
        page.locator(f"#task-{execution.task_id} .badge.cancelling").wait_for()
    assert page.locator(f"#task-{left_alone.task_id} .badge.state-pending").count() == 1
    back_at = time.monotonic()
    page.wait_for_timeout(6_000)
    assert [t for t in polls if t > back_at], "the list did not resume refreshing"

    # With nothing selected, an action elsewhere still refreshes the list at once
    # (taskboard:changed), also with live refresh off.
    page.uncheck("[data-taskboard-live]")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click(f"#task-{left_alone.task_id} button.cancel")
    page.locator(f"#task-{left_alone.task_id} .badge.cancelling").wait_for(timeout=3_000)
    assert problems == []
