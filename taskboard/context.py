"""Who is launching tasks right now, carried by a context variable.

The taskboard middleware sets it for each request; the publish signal reads it lazily, so
a request that launches nothing never loads its user.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

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
