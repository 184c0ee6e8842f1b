"""Every page of the app, for the whole-site browser checks (test_browser_a11y.py,
test_browser_keyboard.py): where it is, who looks at it, what it should answer, and the data
it needs (`site_data()`).

A page that is added to the app is added here, so axe-core, the phone width and dark mode
check it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from taskboard.models import Alert, AlertKind, AlertRule, AlertSilence, TaskNotification, TaskState
from taskboard.tracking import sync_templates
from tests import worker_tasks  # noqa: F401  (declares the "pruebas.informe" template)
from tests.browser import PASSWORD
from tests.factories import make_execution

ADMIN = "jefa"
PLAIN = "ana"
TEMPLATE_KEY = "pruebas.informe"


@dataclass(frozen=True)
class Page:
    name: str  # also the screenshot's file name
    path: str  # formatted with site_data()'s ids: {running}, {failed}
    user: str | None  # ADMIN, PLAIN, or None (signed out)
    status: int = 200

    def url(self, base: str, data: dict[str, str]) -> str:
        return base + self.path.format(**data)


PAGES = [
    Page("login", "/accounts/login/", None),
    Page("dashboard-admin", "/tasks/", ADMIN),
    Page("dashboard-user", "/tasks/", PLAIN),
    Page("detail-running", "/tasks/{running}/", PLAIN),
    Page("detail-failed", "/tasks/{failed}/", PLAIN),
    Page("module", "/tasks/modules/nomina/", ADMIN),
    Page("alerts", "/tasks/alerts/", ADMIN),
    Page("templates", "/tasks/templates/", ADMIN),
    Page("launch-form", f"/tasks/templates/{TEMPLATE_KEY}/launch/", ADMIN),
    Page("notifications", "/tasks/notifications/", PLAIN),
    Page("notification-preferences", "/tasks/notifications/preferences/", PLAIN),
    Page("bulk-confirm", "/tasks/bulk/?action=cancel&scope=queued&module=nomina", ADMIN),
    Page("nomina", "/nomina/", PLAIN),
    Page("not-found", "/tasks/no-such-task-id/", PLAIN, status=404),
    Page("forbidden", "/tasks/modules/nomina/", PLAIN, status=403),
]


def site_data() -> dict[str, str]:
    """Users, tasks (running, failed, queued, finished), notifications and templates: enough
    for every page in PAGES to show what it shows in use. Returns the ids the paths need."""
    users = get_user_model().objects
    admin = users.create_user(ADMIN, password=PASSWORD, is_staff=True)
    ana = users.create_user(PLAIN, password=PASSWORD)
    sync_templates()
    now = timezone.now()
    running = make_execution(
        user=ana,
        state=TaskState.PROGRESS,
        progress=42,
        progress_message="Empleado 42 de 100",
        created_at=now - timedelta(minutes=2),
        started_at=now - timedelta(minutes=2),
    )
    failed = make_execution(
        user=ana,
        state=TaskState.FAILURE,
        display_name="Cierre contable",
        module="contabilidad",
        task_name="sgm.contabilidad.tasks.cerrar_periodo",
        exception_message="ValueError: el periodo no cuadra",
        traceback='Traceback (most recent call last):\n  File "x.py", line 1\nValueError',
        created_at=now - timedelta(hours=1),
        started_at=now - timedelta(hours=1),
        finished_at=now - timedelta(minutes=59),
        duration=61.0,
    )
    others = [
        make_execution(
            user=admin if index % 2 else ana,
            state=state,
            created_at=now - timedelta(hours=index + 2),
            duration=3.0 + index if state == TaskState.SUCCESS else None,
        )
        for index, state in enumerate(
            [TaskState.SUCCESS, TaskState.SUCCESS, TaskState.REVOKED, TaskState.PENDING]
        )
    ]
    levels: dict[str, str] = {TaskState.FAILURE: TaskNotification.Level.ERROR}
    for user in (ana, admin):
        for execution in (failed, others[0], others[2]):
            TaskNotification.objects.create(
                user=user,
                execution=execution,
                level=levels.get(execution.state, TaskNotification.Level.SUCCESS),
                message=execution.display_name,
                state=execution.state,
            )
    # The alerts page: a rule firing, one resolved, one silenced.
    lost = AlertRule.objects.create(name="Perdidas", kind=AlertKind.LOST)
    slow = AlertRule.objects.create(
        name="Nómina lenta", kind=AlertKind.DURATION_P95, module="nomina", threshold=60
    )
    Alert.objects.create(rule=lost, fired_at=now - timedelta(minutes=5), value=1)
    Alert.objects.create(
        rule=slow,
        fired_at=now - timedelta(hours=2),
        value=75.5,
        resolved_at=now - timedelta(hours=1),
    )
    AlertSilence.objects.create(rule=slow, ends_at=now + timedelta(hours=1), reason="despliegue")
    # One of ana's read, so her page shows both kinds.
    first = TaskNotification.objects.filter(user=ana).order_by("pk")[:1]
    TaskNotification.objects.filter(pk__in=first).update(read_at=now)
    return {"running": running.task_id, "failed": failed.task_id}


def session_cookie(username: str | None, base: str) -> list[dict[str, Any]]:
    """The browser cookie of a signed-in session of username (none when signed out): the
    pages are checked, not the login form, so no page pays for logging in."""
    if username is None:
        return []
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    value = client.cookies[settings.SESSION_COOKIE_NAME].value
    return [{"name": settings.SESSION_COOKIE_NAME, "value": value, "url": base}]


def settle(page: Any) -> None:
    """Wait until what loads by itself after the page (the bell, the panels) is there."""
    if page.locator("#notification-bell").count():
        page.locator("#notification-bell[data-unread]").wait_for(state="attached")
    # A function, not a bare expression: the pages' policy forbids eval.
    page.wait_for_function("() => document.querySelectorAll('.htmx-request').length === 0")
