"""Notifications: an execution's owner hears once that it succeeded, failed, was cancelled
or was lost, as their preferences ask; failures may also go out by e-mail. A task marked
lost that its worker finished after all corrects the "lost" notification (once), and the
e-mail too if the "lost" one was e-mailed.

Creation is driven by the `executions_finished` signal, which the recorder sends once per
batch of tracking writes (and reconciliation for the rows it marks LOST). It runs in the
workers' flushing thread: cheap (one query when nobody owns the batch's tasks), and never
raising into tracking. E-mail is never sent there: a Celery task sends it after commit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Q
from django.dispatch import receiver
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from taskboard.conf import conf
from taskboard.models import (
    SAME_WORKER_ONLY,
    TERMINAL_STATES,
    NotificationPreference,
    TaskExecution,
    TaskNotification,
    TaskState,
    is_finished_after_all,
)
from taskboard.signals import executions_finished
from taskboard.tracking.stamps import stamp_bump

logger = logging.getLogger("taskboard.notifications")

EMAIL_TASK = "taskboard.email_notifications"

LEVELS: dict[str, str] = {
    TaskState.SUCCESS: TaskNotification.Level.SUCCESS,
    TaskState.FAILURE: TaskNotification.Level.ERROR,
    TaskState.LOST: TaskNotification.Level.ERROR,
    TaskState.REVOKED: TaskNotification.Level.WARNING,
}
# Which preference switches each final state on or off.
PREFERENCE_FIELDS: dict[str, str] = {
    TaskState.SUCCESS: "on_success",
    TaskState.FAILURE: "on_failure",
    TaskState.REVOKED: "on_revoked",
    TaskState.LOST: "on_lost",
}
EMAIL_STATES: frozenset[str] = frozenset({TaskState.FAILURE, TaskState.LOST})
MESSAGE_MAX = TaskNotification._meta.get_field("message").max_length or 500
SQLITE_CHUNK = 500  # lookups per statement where bound parameters are limited

Lookup = tuple[str, Any]  # ("task_id", "…") or ("pk", 42), as the recorder names rows


def notifications_create_for(*, lookups: Sequence[Lookup]) -> int:
    """Notify the owners of these executions that reached a final state, once each.

    A duplicate (the same final state announced twice, by one process or two) adds
    nothing: the unique constraint `tb_notif_once` drops it. Returns how many notifications
    were wanted (before duplicates were dropped).
    """
    finished = _owned_finished(lookups)
    if not finished:
        return 0  # the common case of unowned tasks: one query, nothing else
    corrected = 0
    resend: list[int] = []
    for row in [row for row in finished if row.after_lost]:
        outcome = _lost_notification_corrected(row)
        if outcome is not None:
            corrected += 1
            finished.remove(row)
            if outcome:
                resend.append(row.pk)
    if resend:
        transaction.on_commit(lambda: _enqueue_emails(resend))
    if not finished:
        return corrected
    preferences = {
        p.user_id: p
        for p in NotificationPreference.objects.filter(user_id__in={f.user_id for f in finished})
    }
    notifications: list[TaskNotification] = []
    emails: list[int] = []
    for row in finished:
        preference = preferences.get(row.user_id)
        if not _wanted(row, preference):
            continue
        notifications.append(
            TaskNotification(
                user_id=row.user_id,
                execution_id=row.pk,
                level=LEVELS[row.state],
                state=row.state,
                message=row.label[:MESSAGE_MAX],
            )
        )
        if preference is not None and preference.email_failures and row.state in EMAIL_STATES:
            emails.append(row.pk)
    if not notifications:
        return corrected
    with transaction.atomic():
        TaskNotification.objects.bulk_create(notifications, ignore_conflicts=True)
        # The bell is one of the panels an open dashboard's pulse watches.
        transaction.on_commit(stamp_bump)
        if emails:
            transaction.on_commit(lambda: _enqueue_emails(emails))
    return corrected + len(notifications)


def _wanted(row: _Finished, preference: NotificationPreference | None) -> bool:
    """Saved preferences decide; without them failures, cancellations and losses notify,
    and a success only of a task that ran long enough to be waited for, not watched."""
    if preference is not None:
        return bool(getattr(preference, PREFERENCE_FIELDS[row.state]))
    threshold = conf.NOTIFY_SUCCESS_AFTER_SECONDS
    if row.state != TaskState.SUCCESS or threshold <= 0:
        return True
    # No duration: it never reported a start, so it cannot have run long.
    return row.duration is not None and row.duration >= threshold


def _lost_notification_corrected(row: _Finished) -> bool | None:
    """A task marked LOST that its worker finished after all: the owner's "lost"
    notification becomes the final one ("finished after all"), unread and new again,
    instead of a second notification (tb_notif_once allows one per execution and user).

    Once: only a notification still saying LOST is changed, so a repeated announcement
    changes nothing. None when there was no "lost" notification to correct (the owner
    turned those off, or it was corrected already); otherwise whether it had been
    e-mailed, so the correction is e-mailed too.
    """
    now = timezone.now()
    corrected = {
        "state": row.state,
        "level": LEVELS[row.state],
        "read_at": None,
        "created_at": now,
    }
    lost = TaskNotification.objects.filter(
        execution_id=row.pk, user_id=row.user_id, state=TaskState.LOST
    )
    if lost.filter(emailed_at__isnull=False).update(**corrected, emailed_at=None):
        return True
    if lost.update(**corrected):
        return False
    if TaskNotification.objects.filter(execution_id=row.pk, user_id=row.user_id).exists():
        return False  # corrected already (by another process): nothing more
    return None


@dataclass(frozen=True)
class _Finished:
    pk: int
    user_id: int
    state: str
    label: str
    # Marked LOST first and then finished by its worker after all.
    after_lost: bool = False
    duration: float | None = None  # seconds it ran (None: never started)


def _owned_finished(lookups: Sequence[Lookup]) -> list[_Finished]:
    """The owned, final executions among lookups. Every batch of every worker asks this,
    so it is one plain statement (an ORM query compiles several times slower than the
    database answers it); one per SQLITE_CHUNK lookups where parameters are limited."""
    size = max(len(lookups), 1) if connection.vendor == "postgresql" else SQLITE_CHUNK
    found: list[_Finished] = []
    with connection.cursor() as cursor:
        for start in range(0, len(lookups), size):
            chunk = lookups[start : start + size]
            task_ids = [value for key, value in chunk if key == "task_id"]
            pks = [int(value) for key, value in chunk if key == "pk"]
            if not task_ids and not pks:
                continue
            cursor.execute(*_owned_finished_statement(task_ids, pks))
            rows = cursor.fetchall()
            found.extend(
                _Finished(
                    pk,
                    user_id,
                    state,
                    display_name or task_name,
                    after_lost=lost_at is not None and state in SAME_WORKER_ONLY,
                    duration=duration,
                )
                for pk, user_id, state, display_name, task_name, lost_at, duration in rows
            )
    return list(dict.fromkeys(found))  # one execution named twice (by task id and pk)


def _owned_finished_statement(task_ids: list[str], pks: list[int]) -> tuple[str, list[Any]]:
    quote = connection.ops.quote_name
    which: list[str] = []
    params: list[Any] = []
    for column, values in (("task_id", task_ids), ("id", pks)):
        if not values:
            continue
        if connection.vendor == "postgresql":
            which.append(f"{quote(column)} = ANY(%s)")
            params.append(values)
        else:
            which.append(f"{quote(column)} IN ({', '.join(['%s'] * len(values))})")
            params.extend(values)
    # Our own constants (TaskState values), written into the statement.
    final = ", ".join(f"'{state}'" for state in sorted(TERMINAL_STATES))
    columns = ", ".join(
        quote(c)
        for c in ("id", "user_id", "state", "display_name", "task_name", "lost_at", "duration")
    )
    sql = (
        f"SELECT {columns} FROM {quote(TaskExecution._meta.db_table)} "
        f"WHERE ({' OR '.join(which)}) AND {quote('user_id')} IS NOT NULL "
        f"AND {quote('state')} IN ({final})"
    )
    return sql, params


def _enqueue_emails(execution_ids: list[int]) -> None:
    try:
        # By name: services do not import the task modules that call them.
        current_app.send_task(EMAIL_TASK, args=[execution_ids])
    except Exception:
        logger.exception("taskboard: could not enqueue the e-mails of %s", execution_ids)


@receiver(executions_finished, dispatch_uid="taskboard.notifications")
def on_executions_finished(sender: Any, lookups: Sequence[Lookup], **kwargs: Any) -> None:
    # Runs inside tracking (a worker's flushing thread, a publisher, reconciliation):
    # a notification that cannot be written is logged, never raised.
    try:
        notifications_create_for(lookups=lookups)
    except Exception:
        logger.exception("taskboard: could not create notifications for %d tasks", len(lookups))


# --- Reading and preferences (the user's own) ------------------------------------------


def notification_mark_read(*, user: Any, notification_id: int) -> TaskNotification | None:
    """Mark one of user's notifications read; None when user has no such notification."""
    notification = (
        TaskNotification.objects.filter(user=user, pk=notification_id)
        .select_related("execution")
        .only("id", "read_at", "execution__task_id")
        .first()
    )
    if notification is None:
        return None
    if notification.read_at is None:
        notification.read_at = timezone.now()
        TaskNotification.objects.filter(pk=notification.pk, read_at__isnull=True).update(
            read_at=notification.read_at
        )
        stamp_bump()  # the user's other open pages
    return notification


def notifications_mark_all_read(*, user: Any) -> int:
    """Mark every unread notification of user read; how many were."""
    marked = TaskNotification.objects.filter(user=user, read_at__isnull=True).update(
        read_at=timezone.now()
    )
    if marked:
        stamp_bump()
    return marked


def notification_preferences_set(
    *,
    user: Any,
    on_success: bool,
    on_failure: bool,
    on_revoked: bool,
    on_lost: bool,
    email_failures: bool,
) -> NotificationPreference:
    preference, _ = NotificationPreference.objects.update_or_create(
        user=user,
        defaults={
            "on_success": on_success,
            "on_failure": on_failure,
            "on_revoked": on_revoked,
            "on_lost": on_lost,
            "email_failures": email_failures,
        },
    )
    return preference


# --- E-mail (a Celery task's work, never the flushing thread's) ------------------------


def notifications_email(*, execution_ids: Sequence[int]) -> int:
    """E-mail the failure notifications of these executions to owners who asked for it and
    have an address, once each (`emailed_at` claims it). Returns how many were sent."""
    candidates = (
        TaskNotification.objects.filter(
            # Failures, and corrections of a "lost" that was e-mailed ("finished after all").
            Q(state__in=EMAIL_STATES) | Q(execution__lost_at__isnull=False),
            execution_id__in=list(execution_ids),
            emailed_at__isnull=True,
            user__taskboard_preferences__email_failures=True,
        )
        .exclude(user__email="")
        .select_related("user", "execution")
        .only("id", "message", "state", "user__email", "execution__task_id", "execution__lost_at")
    )
    sent = 0
    for notification in candidates:
        claimed_at = timezone.now()
        claimed = TaskNotification.objects.filter(
            pk=notification.pk, emailed_at__isnull=True
        ).update(emailed_at=claimed_at)
        if not claimed:
            continue  # another run of this task is sending it
        try:
            _send(notification)
        except Exception:
            # Unclaimed, so a retry of the task sends it.
            TaskNotification.objects.filter(pk=notification.pk, emailed_at=claimed_at).update(
                emailed_at=None
            )
            raise
        sent += 1
    return sent


def _send(notification: TaskNotification) -> None:
    with translation.override(settings.LANGUAGE_CODE):
        execution = notification.execution
        context = {
            "state": notification.state,
            "label": notification.message,
            "after_lost": execution is not None and is_finished_after_all(execution),
        }
        text = render_to_string("taskboard/email/notification.txt", context).strip()
        link = ""
        if notification.execution is not None:
            path = reverse("taskboard:detail", args=[notification.execution.task_id])
            link = f"{conf.SITE_URL}{path}"
        body = f"{text}\n\n{link}\n" if link else f"{text}\n"
        send_mail(
            subject=" ".join(text.split()),  # a header: never a line break
            message=body,
            from_email=None,  # DEFAULT_FROM_EMAIL
            recipient_list=[notification.user.email],
        )
