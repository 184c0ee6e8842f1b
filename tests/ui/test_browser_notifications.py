"""The notification bell in a real browser: the count follows the user's tasks without a
reload, the list opens, a notification leads to its task, "mark all read" empties it.

A real Chromium (the system's, driven by Playwright) against the live server and a real
Celery worker process on the same test database.
"""

from __future__ import annotations

from sgm.contabilidad.tasks import cerrar_periodo
from taskboard.models import NotificationPreference, TaskNotification, TaskState
from taskboard.tracking.ownership import launched_by
from tests import worker_tasks
from tests.browser import ARTIFACTS, PASSWORD, log_in, watch_console
from tests.processes import wait_until

POLL_MS = 15_000  # the bell polls every 5 s


def test_bell_follows_the_users_tasks_and_reads_notifications(
    live_server, worker, django_user_model, page
):
    nuria = django_user_model.objects.create_user("nuria", password=PASSWORD)
    # She asked for every success (by default a quick one such as add() rings no bell).
    NotificationPreference.objects.create(user=nuria, on_success=True)
    problems = watch_console(page)
    base = live_server.url
    log_in(page, base, "nuria", "/tasks/")
    # The header's placeholder loads the bell by itself.
    page.locator('#notification-bell[data-unread="0"]').wait_for()
    assert page.locator("#notification-bell .bell-count").count() == 0
    page.evaluate("window.__sameDocument = true")  # a reload would wipe it

    # Two of her tasks finish elsewhere: a worker runs them; the bell hears by itself.
    # (No result is awaited: nothing subscribes to the result store.)
    with launched_by(nuria):
        added = worker_tasks.add.apply_async((2, 3), ignore_result=True)
        closing = cerrar_periodo.apply_async(("2025-04",), ignore_result=True)
    page.locator('#notification-bell[data-unread="2"]').wait_for(timeout=30_000 + POLL_MS)
    assert page.locator("#notification-bell .bell-count").inner_text() == "2"
    assert page.evaluate("window.__sameDocument") is True

    # Open the list: her two notifications, newest first; polling pauses while it is open.
    page.click("#notification-bell summary")
    items = page.locator("#notification-bell .bell-item")
    assert items.count() == 2
    failure = TaskNotification.objects.get(execution__task_id=closing.id)
    assert failure.state == TaskState.FAILURE
    item = page.locator(f'#notification-bell .bell-item[data-notification="{failure.pk}"]')
    assert "Cierre contable del periodo" in item.inner_text()
    assert "level-error" in (item.get_attribute("class") or "")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "notifications.png"), full_page=True)

    # Read it: its link leads to the task, and it is read now.
    item.locator("button").click()
    page.wait_for_url(f"{base}/tasks/{closing.id}/")
    wait_until(lambda: TaskNotification.objects.get(pk=failure.pk).read_at, timeout=5)
    page.locator('#notification-bell[data-unread="1"]').wait_for()

    # Mark all read from the bell: the count goes, without a reload.
    page.evaluate("window.__sameDocument = true")
    page.click("#notification-bell summary")
    page.click("#notification-bell .mark-all button")
    page.locator('#notification-bell[data-unread="0"]').wait_for()
    assert page.locator("#notification-bell .bell-count").count() == 0
    assert not TaskNotification.objects.filter(user=nuria, read_at__isnull=True).exists()
    assert TaskNotification.objects.get(execution__task_id=added.id).read_at is not None
    assert page.evaluate("window.__sameDocument") is True

    # The page lists both, read.
    page.goto(f"{base}/tasks/notifications/")
    assert page.locator("#notification-list .notification").count() == 2
    assert page.locator("#notification-list .notification.unread").count() == 0
    page.screenshot(path=str(ARTIFACTS / "notifications-page.png"), full_page=True)
    assert problems == []
