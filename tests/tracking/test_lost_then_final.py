"""A fact beats an inference: a task marked LOST that its worker then finished.

The late SUCCESS/FAILURE of the worker that ran the task replaces LOST (lost_at stays, so
the record shows both) and corrects the owner's "lost" notification once; another
worker's late write, or anything else, leaves LOST as it is.
"""

from __future__ import annotations

from typing import Any

from django.core import mail
from django.urls import reverse
from django.utils import translation

from taskboard.models import (
    TaskExecution,
    TaskNotification,
    TaskState,
    WorkerHeartbeat,
    can_transition,
    database_now,
)
from taskboard.services.notifications import notifications_email
from taskboard.services.reconcile import executions_mark_lost
from taskboard.templatetags.taskboard_text import notification_text
from taskboard.tracking.ownership import launched_by
from taskboard.tracking.recorder import Write, apply
from tests.factories import client_for, make_execution
from tests.processes import wait_until
from tests.worker_tasks import progress_then_wait

WORKER = "ran-it@localhost"


def lost_execution(user: Any, worker: str = WORKER) -> TaskExecution:
    """A running task whose worker stopped: reconciliation marks it LOST."""
    now = database_now()
    WorkerHeartbeat.objects.update_or_create(
        hostname=worker, defaults={"last_seen": now, "stopped_at": now}
    )
    execution = make_execution(user=user, worker=worker, state=TaskState.PROGRESS, started_at=now)
    assert executions_mark_lost() == 1
    execution.refresh_from_db()
    assert execution.state == TaskState.LOST and execution.lost_at is not None
    return execution


def late_final(execution: TaskExecution, state: str, by: str, **fields: Any) -> bool:
    """The final write a worker's task_success/task_failure makes (tracking/handlers.py)."""
    return apply(
        Write(
            ("task_id", execution.task_id),
            state,
            {"finished_at": database_now(), "progress": 100, **fields},
            conditions={"worker_if_lost": by},
        )
    )


def notification_of(execution: TaskExecution) -> TaskNotification:
    [notification] = TaskNotification.objects.filter(execution=execution)
    return notification


def test_the_rule_lets_a_final_state_replace_lost_only_for_the_same_worker():
    assert can_transition(TaskState.LOST, TaskState.SUCCESS, same_worker=True)
    assert can_transition(TaskState.LOST, TaskState.FAILURE, same_worker=True)
    assert not can_transition(TaskState.LOST, TaskState.SUCCESS)
    assert not can_transition(TaskState.LOST, TaskState.REVOKED, same_worker=True)
    assert not can_transition(TaskState.LOST, TaskState.PROGRESS, same_worker=True)
    assert not can_transition(TaskState.SUCCESS, TaskState.FAILURE, same_worker=True)


def test_the_same_workers_success_replaces_lost_and_notifies_finished_after_all(ana):
    execution = lost_execution(ana)
    lost = notification_of(execution)
    assert lost.state == TaskState.LOST
    TaskNotification.objects.filter(pk=lost.pk).update(read_at=database_now())  # she saw it
    lost_at = execution.lost_at

    assert late_final(execution, TaskState.SUCCESS, WORKER, result_summary="'done'")
    execution.refresh_from_db()
    assert execution.state == TaskState.SUCCESS and execution.result_summary == "'done'"
    assert execution.lost_at == lost_at and execution.finished_after_all
    corrected = notification_of(execution)  # the same one, corrected: not a second
    assert corrected.pk == lost.pk and corrected.state == TaskState.SUCCESS
    assert corrected.level == TaskNotification.Level.SUCCESS and corrected.read_at is None
    assert corrected.created_at > lost.created_at  # new again: on top of the list

    # Announced again (a duplicate final write, another process): nothing more.
    assert not late_final(execution, TaskState.SUCCESS, WORKER)
    assert TaskNotification.objects.filter(execution=execution).count() == 1


def test_the_same_workers_failure_replaces_lost_with_the_real_error(ana):
    execution = lost_execution(ana)
    assert late_final(
        execution, TaskState.FAILURE, WORKER, exception_type="ValueError", exception_message="bad"
    )
    execution.refresh_from_db()
    assert execution.state == TaskState.FAILURE and execution.exception_type == "ValueError"
    assert execution.lost_at is not None
    notification = notification_of(execution)
    assert notification.state == TaskState.FAILURE
    assert notification.level == TaskNotification.Level.ERROR


def test_another_workers_late_write_and_other_states_leave_lost(ana):
    execution = lost_execution(ana)
    assert not late_final(execution, TaskState.SUCCESS, "someone-else@localhost")
    # Without the worker condition (a person, a script, a service): refused too.
    assert not apply(Write(("task_id", execution.task_id), TaskState.SUCCESS, {}))
    for state in (TaskState.REVOKED, TaskState.PROGRESS, TaskState.STARTED, TaskState.RETRY):
        assert not apply(
            Write(("task_id", execution.task_id), state, {}, conditions={"worker_if_lost": WORKER})
        )
    execution.refresh_from_db()
    assert execution.state == TaskState.LOST
    assert notification_of(execution).state == TaskState.LOST


def test_the_condition_changes_nothing_for_a_task_that_was_never_lost(ana, settings):
    # A short task's final write meets a row its worker never wrote to (still PENDING,
    # worker empty): it applies as before. (Every success notifies: by default a short
    # one would not, TASKBOARD_NOTIFY_SUCCESS_AFTER_SECONDS.)
    settings.TASKBOARD_NOTIFY_SUCCESS_AFTER_SECONDS = 0
    execution = make_execution(user=ana, state=TaskState.PENDING, worker="")
    assert late_final(execution, TaskState.SUCCESS, WORKER, worker=WORKER)
    execution.refresh_from_db()
    assert execution.state == TaskState.SUCCESS and execution.lost_at is None
    assert not execution.finished_after_all
    assert notification_of(execution).state == TaskState.SUCCESS


def test_finished_after_all_without_a_lost_notification_notifies_once(ana):
    from taskboard.services.notifications import notification_preferences_set

    notification_preferences_set(
        user=ana,
        on_success=True,
        on_failure=True,
        on_revoked=True,
        on_lost=False,
        email_failures=False,
    )
    execution = lost_execution(ana)
    assert not TaskNotification.objects.filter(execution=execution).exists()
    assert late_final(execution, TaskState.SUCCESS, WORKER)
    assert notification_of(execution).state == TaskState.SUCCESS


def test_the_wording_says_finished_after_all(ana):
    execution = lost_execution(ana)
    late_final(execution, TaskState.SUCCESS, WORKER)
    with translation.override("en"):
        text = notification_text(state=TaskState.SUCCESS, label="Informe", after_lost=True)
        assert text == "«Informe» finished after all: it had been marked lost"
        failed = notification_text(state=TaskState.FAILURE, label="Informe", after_lost=True)
        assert "finished after all" in failed and "failed" in failed
    page = client_for(ana).get(
        reverse("taskboard:notifications"), headers={"Accept-Language": "en"}
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count("finished after all: it had been marked lost") == 1
    detail = client_for(ana).get(
        reverse("taskboard:detail", args=[execution.task_id]), headers={"Accept-Language": "en"}
    )
    assert "its worker finished it after all" in detail.content.decode()


def test_an_emailed_lost_is_corrected_by_email_once(
    ana, settings, django_capture_on_commit_callbacks, monkeypatch
):
    from taskboard.services.notifications import notification_preferences_set

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.LANGUAGE_CODE = "en"
    ana.email = "ana@example.com"
    ana.save()
    notification_preferences_set(
        user=ana,
        on_success=True,
        on_failure=True,
        on_revoked=True,
        on_lost=True,
        email_failures=True,
    )
    enqueued: list[list[int]] = []
    monkeypatch.setattr(
        "taskboard.services.notifications._enqueue_emails", lambda ids: enqueued.append(ids)
    )
    with django_capture_on_commit_callbacks(execute=True):
        execution = lost_execution(ana)
    assert notifications_email(execution_ids=[execution.pk]) == 1  # "… was lost"
    with django_capture_on_commit_callbacks(execute=True):
        late_final(execution, TaskState.SUCCESS, WORKER)
        late_final(execution, TaskState.SUCCESS, WORKER)  # a duplicate: nothing more
    assert enqueued == [[execution.pk], [execution.pk]]  # the lost one, then the correction
    assert notifications_email(execution_ids=[execution.pk]) == 1
    assert notifications_email(execution_ids=[execution.pk]) == 0  # claimed: never twice
    lost_mail, corrected_mail = mail.outbox
    assert "was lost" in lost_mail.subject
    assert "finished after all" in corrected_mail.subject


def test_a_real_workers_success_replaces_a_lost_recorded_meanwhile(worker, ana):
    with launched_by(ana):
        result = progress_then_wait.delay(3)
    running = wait_until(
        lambda: TaskExecution.objects.filter(
            task_id=result.id, state=TaskState.PROGRESS, worker=worker.name
        ).first(),
        timeout=15,
    )
    # Reconciliation's inference, recorded while the task still runs (its worker looked
    # gone): the same write executions_mark_lost() makes.
    assert apply(
        Write(
            ("pk", running.pk),
            TaskState.LOST,
            {"finished_at": database_now(), "exception_type": "WorkerLostError"},
            conditions={"worker": worker.name},
        )
    )
    assert notification_of(running).state == TaskState.LOST
    assert result.get(timeout=20) == "done"
    done = wait_until(
        lambda: TaskExecution.objects.filter(pk=running.pk, state=TaskState.SUCCESS).first(),
        timeout=10,
    )
    assert done.lost_at is not None and done.result_summary
    # Corrected by the worker right after its write committed.
    notification = wait_until(
        lambda: TaskNotification.objects.filter(execution=done, state=TaskState.SUCCESS).first(),
        timeout=10,
    )
    assert notification.read_at is None
    assert TaskNotification.objects.filter(execution=done).count() == 1
