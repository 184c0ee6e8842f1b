"""Task templates a user may launch."""

from __future__ import annotations

from django.db.models import QuerySet

from taskboard.models import (
    TaskTemplate,
)
from taskboard.permissions import Viewer, is_operator


def template_list_launchable(
    *, user: Viewer | None, module: str | None = None
) -> QuerySet[TaskTemplate]:
    """The active templates user may launch, by module and name: staff every one, others
    those of their groups. One query (the group test is a subquery, so no duplicates)."""
    if user is None or not user.is_authenticated:
        return TaskTemplate.objects.none()
    rows = TaskTemplate.objects.filter(is_active=True).exclude(task_name="")
    if module:
        rows = rows.filter(module=module)
    if not is_operator(user):
        allowed = TaskTemplate.allowed_groups.through.objects.filter(group__user__pk=user.pk)
        rows = rows.filter(pk__in=allowed.values("tasktemplate_id"))
    return rows.order_by("module", "display_name", "key")


def template_get_active(*, key: str) -> TaskTemplate | None:
    """The active, launchable template of key (None: unknown, inactive or without a task)."""
    if len(key) > 200 or "\x00" in key:
        return None  # cannot exist: do not ask
    rows = TaskTemplate.objects.filter(key=key, is_active=True).exclude(task_name="")
    return rows.first()
