"""Who may see and act on what: the one place that spells "staff or owner".

Views, the API, services, template tags and querysets ask these; none decides by itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from django.core.exceptions import PermissionDenied

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    from taskboard.models import TaskExecution

# Whoever a request carries: a user of the auth user model, or nobody logged in.
Viewer: TypeAlias = "User | AnonymousUser"


def is_operator(user: Viewer | None) -> bool:
    """Staff operate taskboard: they see every task, every module page, every worker, and
    may terminate tasks and act on many at once."""
    if user is None or not user.is_authenticated:
        return False
    return bool(getattr(user, "is_staff", False))


def operator_lookup(prefix: str = "") -> dict[str, bool]:
    """is_operator as a queryset filter on users (prefix: the path to the user, e.g.
    "user__"): who alerts notify, whom a rule may name."""
    return {f"{prefix}is_staff": True}


def is_owner(user: Viewer | None, execution: TaskExecution) -> bool:
    if user is None or not user.is_authenticated:
        return False
    return execution.user_id is not None and execution.user_id == user.pk


def can_view(user: Viewer | None, execution: TaskExecution) -> bool:
    """Staff see every execution; anyone else their own."""
    return is_operator(user) or is_owner(user, execution)


def can_control(user: Viewer | None, execution: TaskExecution) -> bool:
    """Cancel and retry: its owner or staff."""
    return is_operator(user) or is_owner(user, execution)


def can_terminate(user: Viewer | None, execution: TaskExecution | None = None) -> bool:
    """Killing a running task (work in progress is lost) is for staff only."""
    return is_operator(user)


def may_name_owner(user: Viewer | None, owner: str) -> bool:
    """May user filter tasks by this owner (a username or numeric id)? Staff any; anyone else
    only themselves."""
    if is_operator(user):
        return True
    if user is None or not user.is_authenticated:
        return False
    return owner in (user.get_username(), str(user.pk))


def signed_in(user: Viewer) -> User:
    """The user of a view that requires login (login_required has sent anyone else away)."""
    if not user.is_authenticated:
        raise PermissionDenied
    return user
