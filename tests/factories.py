"""Factories in one place."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from taskboard.models import TaskExecution, TaskState

_sequence = itertools.count(1)


def make_user(username: str | None = None, *, staff: bool = False, **extra: Any) -> User:
    username = username or f"user{next(_sequence)}"
    user: User = get_user_model().objects.create_user(
        username=username, password="secret-pass-123", is_staff=staff, **extra
    )
    return user


def client_for(user: Any) -> Client:
    """A test client logged in as user."""
    client = Client()
    client.force_login(user)
    return client


def make_execution(**fields: Any) -> TaskExecution:
    defaults: dict[str, Any] = {
        "task_id": str(uuid.uuid4()),
        "task_name": "sgm.nomina.tasks.consolidar_nomina",
        "display_name": "Consolidar nómina",
        "module": "nomina",
        "state": TaskState.SUCCESS,
    }
    defaults.update(fields)
    return TaskExecution.objects.create(**defaults)


def make_history(users: list[Any], count: int = 300) -> list[TaskExecution]:
    """count executions of mixed owners, modules and states over the last week."""
    now = timezone.now()
    modules = ["nomina", "contabilidad", "facturacion"]
    states = list(TaskState.values)
    rows = []
    for index in range(count):
        state = states[index % len(states)]
        module = modules[(index // len(states)) % len(modules)]
        created = now - timedelta(minutes=index * 7)
        rows.append(
            TaskExecution(
                task_id=str(uuid.uuid4()),
                task_name=f"sgm.{module}.tasks.job{index % 5}",
                display_name=f"Job {index % 5}",
                module=module,
                user=users[index % len(users)],
                state=state,
                created_at=created,
                started_at=created + timedelta(seconds=1),
                duration=float(index % 50) + 0.5 if state == TaskState.SUCCESS else None,
            )
        )
    return TaskExecution.objects.bulk_create(rows)
