"""Who owns a task: the launching request's user, carried by a context variable, or what
the message, the arguments or the parent task say.

The taskboard middleware sets it for each request; the publish signal reads it lazily, so
a request that launches nothing never loads its user.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from celery import current_task
from django.contrib.auth import get_user_model

if TYPE_CHECKING:
    from taskboard.tracking.registry import TaskMeta

UserIdGetter = Callable[[], int | None]

_launching_user: ContextVar[UserIdGetter | None] = ContextVar("taskboard_user", default=None)


def current_user_id() -> int | None:
    getter = _launching_user.get()
    return getter() if getter is not None else None


def in_request() -> bool:
    """Is a request (or a `launched_by` block) publishing right now?"""
    return _launching_user.get() is not None


def user_id_of(user: Any) -> int | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    pk = getattr(user, "pk", None)
    return pk if isinstance(pk, int) else None


@contextmanager
def launching_as(getter: UserIdGetter | None) -> Iterator[None]:
    token = _launching_user.set(getter)
    try:
        yield
    finally:
        _launching_user.reset(token)


@contextmanager
def launched_by(user: Any) -> Iterator[None]:
    """Tasks published inside this block are owned by user (for scripts and commands)."""
    user_id = user_id_of(user) if not isinstance(user, int) else user
    with launching_as(lambda: user_id):
        yield


# Message header that carries the launching user to the worker (and to child tasks).
OWNER_HEADER = "taskboard_user_id"


def _parent_owner() -> int | None:
    request = getattr(current_task, "request", None) if current_task else None
    value = getattr(request, OWNER_HEADER, None) if request is not None else None
    return value if isinstance(value, int) else None


def _existing_user(user_id: int | None) -> int | None:
    # A user_id argument is the caller's data: it may name no user, and a dangling foreign
    # key would fail the write (or, deferred, the caller's own transaction).
    if user_id is None or not get_user_model().objects.filter(pk=user_id).exists():
        return None
    return user_id


def resolve_owner(
    meta: TaskMeta, args: Sequence[Any], kwargs: Mapping[str, Any], carried: Any = None
) -> int | None:
    """Who owns a task: the launching request's user, else the one its message carries,
    else a `user_id` argument, else the owner of the task that launched it."""
    owner = current_user_id()
    if owner is None and isinstance(carried, int) and not isinstance(carried, bool):
        owner = carried
    if owner is None:
        owner = _existing_user(meta.owner_from_arguments(args, kwargs))
    if owner is None:
        owner = _parent_owner()
    return owner
