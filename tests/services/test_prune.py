"""Retention: taskboard_prune and the beat task delete old finished executions in batches."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings as project_settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from taskboard.models import TaskExecution, TaskNotification, TaskState
from taskboard.services.retention import executions_prune, retention_cutoff
from taskboard.tasks import prune
from tests.factories import make_execution


def old_rows(count: int, *, days: int = 120, state: str = TaskState.SUCCESS) -> None:
    created = timezone.now() - timedelta(days=days)
    TaskExecution.objects.bulk_create(
        [
            TaskExecution(
                task_id=str(uuid.uuid4()),
                task_name="sgm.nomina.tasks.consolidar_nomina",
                module="nomina",
                state=state,
                created_at=created,
            )
            for _ in range(count)
        ],
        batch_size=2000,
    )


def test_ten_thousand_old_rows_go_in_batches_and_recent_ones_stay(db, ana):
    old_rows(10_000)
    stuck = make_execution(state=TaskState.STARTED, created_at=timezone.now() - timedelta(days=200))
    recent = [make_execution(user=ana) for _ in range(5)]
    pruned = TaskExecution.objects.filter(created_at__lt=timezone.now() - timedelta(days=100))
    notified = pruned.filter(state=TaskState.SUCCESS).first()
    TaskNotification.objects.create(user=ana, execution=notified, message="x", state="SUCCESS")
    retry = make_execution(user=ana, retry_of=notified)
    batches: list[int] = []
    cutoff = retention_cutoff(days=90)
    assert cutoff is not None
    deleted = executions_prune(older_than=cutoff, batch_size=1000, progress=batches.append)
    assert deleted == 10_000
    assert batches == list(range(1000, 10_001, 1000))  # ten transactions of 1000 rows
    assert set(TaskExecution.objects.values_list("pk", flat=True)) == {
        stuck.pk,  # not finished: reconciliation's business, never pruned
        retry.pk,
        *(e.pk for e in recent),
    }
    assert not TaskNotification.objects.exists()  # went with its execution
    retry.refresh_from_db()
    assert retry.retry_of_id is None  # the retry keeps its own history


def test_command_prunes_counts_and_refuses_bad_arguments(db):
    old_rows(30, days=10)
    make_execution()
    out = StringIO()
    call_command("taskboard_prune", "--days", "5", "--dry-run", stdout=out)
    assert "Would delete 30 executions" in out.getvalue()
    assert TaskExecution.objects.count() == 31
    out = StringIO()
    call_command("taskboard_prune", "--days", "5", "--batch-size", "7", stdout=out)
    assert "Deleted 30 executions" in out.getvalue() and TaskExecution.objects.count() == 1
    with pytest.raises(CommandError, match="batch-size"):
        call_command("taskboard_prune", "--batch-size", "0")
    with pytest.raises(CommandError, match="days"):
        call_command("taskboard_prune", "--days", "-1")


def test_retention_zero_keeps_everything(db, settings):
    settings.TASKBOARD_RETENTION_DAYS = 0
    old_rows(3, days=4000)
    out = StringIO()
    call_command("taskboard_prune", stdout=out)
    assert "Retention is off" in out.getvalue() and TaskExecution.objects.count() == 3
    assert prune() == 0


def test_beat_prunes_with_the_setting(db, settings):
    settings.TASKBOARD_RETENTION_DAYS = 30
    old_rows(4, days=31)
    old_rows(2, days=29)
    assert prune() == 4 and TaskExecution.objects.count() == 2
    schedule = project_settings.CELERY_BEAT_SCHEDULE["taskboard-prune"]
    assert schedule["task"] == prune.name == "taskboard.prune"
