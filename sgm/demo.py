"""Demo data for `make run`: two users and a little history. Development only."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from taskboard.models import TaskExecution, TaskState

DEMO_USERS = (
    # username, password, staff
    ("admin", "admin-demo", True),
    ("ana", "ana-demo", False),
)

_HISTORY = (
    ("sgm.nomina.tasks.consolidar_nomina", "Consolidar nómina", "nomina", "nomina.consolidar"),
    ("sgm.nomina.tasks.exportar_nominas", "Exportar nóminas a PDF", "nomina", "nomina.exportar"),
    (
        "sgm.contabilidad.tasks.cerrar_periodo",
        "Cierre contable del periodo",
        "contabilidad",
        "contabilidad.cerrar_periodo",
    ),
)


def seed_demo() -> list[str]:
    """Create the demo users (and history, once). The lines to print for the newcomer."""
    if not settings.DEBUG:
        raise RuntimeError("Demo users are never created with DEBUG off.")
    users = []
    for username, password, staff in DEMO_USERS:
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": staff, "is_superuser": staff}
        )
        if created:
            user.set_password(password)
            user.save()
        users.append(user)
    if not TaskExecution.objects.exists():
        _seed_history(users)
    return [
        f"  {username} / {password}  ({'staff' if staff else 'plain user'})"
        for username, password, staff in DEMO_USERS
    ]


def _seed_history(users: list[Any]) -> None:
    now = timezone.now()
    rows = []
    for index in range(36):
        task_name, display_name, module, template = _HISTORY[index % len(_HISTORY)]
        failed = module == "contabilidad" and index % 2 == 0
        created = now - timedelta(hours=index * 4 + 1)
        duration = 2.0 + (index % 7) * 1.5
        rows.append(
            TaskExecution(
                task_id=str(uuid.uuid4()),
                task_name=task_name,
                display_name=display_name,
                module=module,
                template_id=template,
                user=users[index % len(users)],
                state=TaskState.FAILURE if failed else TaskState.SUCCESS,
                progress=50 if failed else 100,
                created_at=created,
                started_at=created + timedelta(seconds=1),
                finished_at=created + timedelta(seconds=1 + duration),
                duration=duration,
                worker="demo@localhost",
                queue="celery",
                exception_type="sgm.contabilidad.tasks.AsientosDescuadradosError" if failed else "",
                exception_message=(
                    "El periodo no cuadra: asientos descuadrados A-102" if failed else ""
                ),
            )
        )
    TaskExecution.objects.bulk_create(rows)
