"""A user's own notifications: the bell, the page, preferences."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import QuerySet

if TYPE_CHECKING:
    from django.contrib.auth.models import User

from taskboard.models import (
    SAME_WORKER_ONLY,
    NotificationPreference,
    TaskNotification,
)


@dataclass(frozen=True)
class NotificationItem:
    """A notification as a page shows it."""

    id: int
    level: str
    state: str
    label: str  # the task's label, as the notification stored it
    task_id: str  # of the task it is about ("" if none): its detail page
    created_at: datetime
    is_read: bool
    after_lost: bool = False  # marked lost, then finished by its worker after all


def _notification_rows(*, user: User) -> QuerySet[TaskNotification]:
    return (
        TaskNotification.objects.filter(user_id=user.pk)
        .select_related("execution")
        .only(
            "id",
            "level",
            "state",
            "message",
            "created_at",
            "read_at",
            "execution__task_id",
            "execution__lost_at",
        )
        .order_by("-created_at", "-id")
    )


def _notification_items(*, rows: Collection[TaskNotification]) -> list[NotificationItem]:
    return [
        NotificationItem(
            id=row.pk,
            level=row.level,
            state=row.state,
            label=row.message,
            task_id=row.execution.task_id if row.execution is not None else "",
            created_at=row.created_at,
            is_read=row.read_at is not None,
            after_lost=row.execution is not None
            and row.execution.lost_at is not None
            and row.state in SAME_WORKER_ONLY,
        )
        for row in rows
    ]


def notification_unread_count(*, user: User) -> int:
    return TaskNotification.objects.filter(user_id=user.pk, read_at__isnull=True).count()


def notification_bell(*, user: User, limit: int = 5) -> tuple[int, list[NotificationItem]]:
    """(unread count, the newest `limit` unread): what the header's bell shows. Both are
    served by the (user, read_at, created_at) index; the count costs a query only when
    there are more unread than shown."""
    rows = list(_notification_rows(user=user).filter(read_at__isnull=True)[: limit + 1])
    count = len(rows) if len(rows) <= limit else notification_unread_count(user=user)
    return count, _notification_items(rows=rows[:limit])


@dataclass(frozen=True)
class NotificationPage:
    items: list[NotificationItem]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def notification_page(*, user: User, number: int, per_page: int = 25) -> NotificationPage:
    """Page `number` (from 1) of user's notifications, newest first, without a COUNT: one
    row past the page says whether there is another."""
    start = (number - 1) * per_page
    rows = list(_notification_rows(user=user)[start : start + per_page + 1])
    return NotificationPage(
        items=_notification_items(rows=rows[:per_page]),
        number=number,
        has_next=len(rows) > per_page,
    )


def notification_preferences_get(*, user: User) -> NotificationPreference:
    """user's preferences; without a saved row, the defaults (unsaved): all on, no e-mail."""
    preference = NotificationPreference.objects.filter(user_id=user.pk).first()
    return preference if preference is not None else NotificationPreference(user_id=user.pk)
