"""Fair use of the workers: how many unfinished tasks a user may have, and how fast they may
launch.

Every place a user launches work asks `launch_check` first: a template launch, a single
retry, the example modules' launch views (bulk retry asks `unfinished_room` once per batch).

- A plain user may have at most `TASKBOARD_MAX_UNFINISHED_PER_USER` unfinished (queued or
  running) tasks in all, and `TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE` of one task (template);
  more is refused with 409. They may launch at most `TASKBOARD_LAUNCHES_PER_MINUTE` times a
  minute (every attempt counts, refused ones included); more is refused with 429.
- Staff (operators) are limited separately: `TASKBOARD_MAX_UNFINISHED_PER_STAFF` unfinished
  tasks in all, no per-template limit and no rate limit (a bulk retry is hundreds of launches
  by design, and staff can cancel anything they start).

A limit of 0 is no limit. The unfinished check is one query (a count of the user's
unfinished rows). Two requests of the same user at the same instant may both pass it (the
rows are written after the check): the rate limit bounds that burst.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.core.cache import caches
from django.db.models import Count, Q
from django.utils.translation import ngettext

from taskboard.conf import conf
from taskboard.models import TaskExecution
from taskboard.permissions import Viewer, is_operator

logger = logging.getLogger("taskboard.limits")

RATE_WINDOW = 60  # seconds: TASKBOARD_LAUNCHES_PER_MINUTE
TOO_MANY_UNFINISHED = 409
TOO_MANY_LAUNCHES = 429

# The rate limit's clock (a fixed window of RATE_WINDOW seconds); tests replace it.
clock: Callable[[], float] = time.time


class LaunchRefused(Exception):
    """A launch over a limit: `message` is for the user, `status` 409 (too many unfinished
    tasks) or 429 (too many launches), `retry_after` seconds (429 only, else 0)."""

    def __init__(self, message: str, status: int, retry_after: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Unfinished:
    total: int  # the user's unfinished tasks
    same: int  # of them, of the task being launched


def unfinished_of(*, user: Viewer, task_name: str = "") -> Unfinished:
    """The user's unfinished tasks, in all and of task_name: one query."""
    counts = (
        TaskExecution.objects.filter(user_id=user.pk or 0)
        .active()
        .aggregate(total=Count("pk"), same=Count("pk", filter=Q(task_name=task_name)))
    )
    return Unfinished(total=counts["total"] or 0, same=counts["same"] or 0)


def launch_check(*, user: Viewer, task_name: str) -> None:
    """Raise LaunchRefused unless user may launch one more task_name now (module doc).
    Counts the attempt against the user's launch rate."""
    if not user.is_authenticated or user.pk is None:
        return  # launches need a login: the views refuse anonymous users before this
    if is_operator(user):
        _check_staff(user=user, wanted=1)
        return
    _take_launch(user_pk=user.pk)
    per_user, per_task = conf.MAX_UNFINISHED_PER_USER, conf.MAX_UNFINISHED_PER_TEMPLATE
    if not per_user and not per_task:
        return
    unfinished = unfinished_of(user=user, task_name=task_name)
    if per_task and unfinished.same >= per_task:
        raise LaunchRefused(
            ngettext(
                "You already have %(count)d unfinished task of this kind: wait until it "
                "finishes (or cancel it) before launching another.",
                "You already have %(count)d unfinished tasks of this kind: wait until one "
                "finishes (or cancel one) before launching another.",
                unfinished.same,
            )
            % {"count": unfinished.same},
            TOO_MANY_UNFINISHED,
        )
    if per_user and unfinished.total >= per_user:
        raise LaunchRefused(_too_many_unfinished(unfinished.total), TOO_MANY_UNFINISHED)


def unfinished_room(*, user: Viewer) -> int | None:
    """How many more tasks user may have unfinished in all (None: no limit); one query
    when there is a limit. For staff (bulk retry)."""
    limit = conf.MAX_UNFINISHED_PER_STAFF if is_operator(user) else conf.MAX_UNFINISHED_PER_USER
    if not limit:
        return None
    return max(limit - unfinished_of(user=user).total, 0)


def _check_staff(*, user: Viewer, wanted: int) -> None:
    limit = conf.MAX_UNFINISHED_PER_STAFF
    if not limit:
        return
    total = unfinished_of(user=user).total
    if total + wanted > limit:
        raise LaunchRefused(_too_many_unfinished(total), TOO_MANY_UNFINISHED)


def _too_many_unfinished(count: int) -> str:
    return ngettext(
        "You already have %(count)d unfinished task: wait until it finishes (or cancel it) "
        "before launching another.",
        "You already have %(count)d unfinished tasks: wait until some finish (or cancel "
        "some) before launching another.",
        count,
    ) % {"count": count}


def _take_launch(*, user_pk: int) -> None:
    """Count one launch of the user in this minute's window; LaunchRefused (429) past the
    limit. The cache unreachable: the launch is let through (the unfinished limit, in the
    database, still holds), and the log says so."""
    limit = conf.LAUNCHES_PER_MINUTE
    if not limit:
        return
    now = clock()
    window = int(now // RATE_WINDOW)
    key = f"taskboard:launches:{user_pk}:{window}"
    cache = caches[conf.CACHE_ALIAS]
    try:
        cache.add(key, 0, timeout=RATE_WINDOW * 2)
        count = cache.incr(key)
    except Exception as exc:  # any cache backend's error: fail open, say so
        logger.warning("taskboard: launch rate not counted (cache error: %s)", exc)
        return
    if count > limit:
        retry_after = max(int((window + 1) * RATE_WINDOW - now), 1)
        raise LaunchRefused(
            ngettext(
                "Too many launches: at most %(limit)d a minute. Try again in %(seconds)d second.",
                "Too many launches: at most %(limit)d a minute. Try again in %(seconds)d seconds.",
                retry_after,
            )
            % {"limit": limit, "seconds": retry_after},
            TOO_MANY_LAUNCHES,
            retry_after,
        )
