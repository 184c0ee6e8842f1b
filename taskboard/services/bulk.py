"""Bulk actions for staff: retry or delete many executions at once (bulk cancel is in
services/cancel.py, with the single cancel).

Every action works through its rows in bounded batches, newest first by primary key
(a keyset walk: each batch starts below the last one, so the whole walk reads the rows
once), with one transaction per batch, and reports how many it acted on and how many it
skipped. Every row of the selection is reached, however many (memory holds one batch); the
caller bounds the selection (the confirmation's pk range, or the selected ids).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import transaction

from taskboard.conf import conf
from taskboard.models import TaskExecution, TaskExecutionQuerySet
from taskboard.permissions import Viewer, is_operator
from taskboard.services.launch import (
    RetryNotPossible,
    collecting_publications,
    execution_retry,
)
from taskboard.services.limits import unfinished_room
from taskboard.services.totals import executions_delete_counted
from taskboard.tracking.stamps import stamp_bump


@dataclass(frozen=True)
class BulkResult:
    """What a bulk action did."""

    action: str
    total: int  # executions it looked at
    done: int  # cancelled (asked to stop), retried, or deleted
    # cancel: asked, but the revoke broadcast could not be sent; retry: a new execution was
    # made but its task could not be sent (the broker was unreachable: it is FAILURE)
    unsent: int = 0
    # retry: not retried because `by` reached their limit of unfinished tasks
    # (TASKBOARD_MAX_UNFINISHED_PER_STAFF); counted in skipped too
    refused: int = 0

    @property
    def skipped(self) -> int:
        """Already finished (cancel), not retryable (retry), still queued or running
        (delete)."""
        return max(self.total - self.done, 0)


def executions_retry(
    *, rows: TaskExecutionQuerySet, by: Viewer, batch_size: int | None = None
) -> BulkResult:
    """Retry every failed, revoked or lost execution of rows through execution_retry (same
    task and arguments, a new execution linked by retry_of, owned by `by`). One transaction
    per batch; its tasks are published when it commits. Executions that cannot be retried
    (other states, arguments not kept, retried already) are skipped. A retry whose task the
    broker did not take is counted in `unsent` (its row says so and can be retried). Once
    `by` has as many unfinished tasks as their limit allows (services/limits.py, checked
    once per batch), the rest are not retried but counted in `refused`."""
    if not is_operator(by):
        raise PermissionDenied
    size = batch_size or conf.BULK_BATCH_SIZE
    total = rows.count()
    retried = unsent = refused = 0
    # Not retried already: a second bulk retry of the same selection enqueues nothing twice.
    # execution_retry has the last word.
    for batch in rows.retryable().batches(size=size):
        room = unfinished_room(user=by)
        if room == 0:
            refused += len(batch)
            continue
        executions = TaskExecution.objects.filter(pk__in=[r[0] for r in batch]).order_by("-pk")
        with collecting_publications() as publications, transaction.atomic():
            for execution in executions:
                if room is not None and room <= 0:
                    refused += 1
                    continue
                try:
                    execution_retry(execution=execution, by=by, limits_checked=True)
                except (PermissionDenied, RetryNotPossible):
                    continue
                retried += 1
                if room is not None:
                    room -= 1
        # Published as the batch committed (each records its own failure to send).
        unsent += sum(1 for publication in publications if publication.sent is False)
    return BulkResult(action="retry", total=total, done=retried, unsent=unsent, refused=refused)


def executions_delete(
    *, rows: TaskExecutionQuerySet, by: Viewer, batch_size: int | None = None
) -> BulkResult:
    """Delete the finished executions of rows (SUCCESS, FAILURE, REVOKED, LOST), one batch
    per transaction; queued and running ones are never deleted, only counted as skipped.
    Their notifications go with them; an execution that retried one keeps its row (its
    retry_of becomes empty)."""
    if not is_operator(by):
        raise PermissionDenied
    size = batch_size or conf.BULK_BATCH_SIZE
    total = rows.count()
    deleted = 0
    for batch in rows.finished().batches(size=size):
        # One transaction per batch. The state is checked again as the rows are locked:
        # finished is final, but this keeps "never a running one" true whatever happened
        # since the batch was read. The metrics' counters keep what goes (services/totals.py).
        deleted += executions_delete_counted(pks=[r[0] for r in batch])
    if deleted:
        stamp_bump()
    return BulkResult(action="delete", total=total, done=deleted)
