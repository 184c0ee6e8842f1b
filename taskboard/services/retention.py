"""Retention: old finished executions go, in small batches, their notifications with them."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.utils import timezone

from taskboard.conf import conf
from taskboard.models import TaskExecution
from taskboard.services.totals import executions_delete_counted
from taskboard.tracking.stamps import stamp_bump

DEFAULT_BATCH = 1000


def retention_cutoff(*, days: float | None = None, now: datetime | None = None) -> datetime | None:
    """Executions created before this are pruned; None when retention is off (0 days)."""
    days = conf.RETENTION_DAYS if days is None else days
    if days <= 0:
        return None
    return (now or timezone.now()) - timedelta(days=days)


def executions_prune(
    *,
    older_than: datetime,
    batch_size: int = DEFAULT_BATCH,
    pause: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete finished executions created before `older_than`, batch_size rows per
    transaction (short locks; the dashboard keeps working meanwhile). Their notifications
    are deleted with them (CASCADE) and retries that pointed at them keep their own row
    (retry_of set to NULL). Unfinished executions are left for reconciliation. The metrics'
    counters keep them (services/totals.py). Returns how many executions were deleted."""
    stale = TaskExecution.objects.finished().filter(created_at__lt=older_than)
    deleted = 0
    for batch in stale.batches(size=batch_size, newest_first=False):
        if deleted and pause:
            time.sleep(pause)
        # One transaction per batch: the rows go and the metrics' totals take them.
        deleted += executions_delete_counted(pks=[row[0] for row in batch])
        if progress is not None:
            progress(deleted)
    if deleted:
        stamp_bump()
    return deleted
