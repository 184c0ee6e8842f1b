"""Bulk actions for staff: cancel, retry or delete many executions at once.

Every action works through its rows in bounded batches, newest first by primary key
(a keyset walk: each batch starts below the last one, so the whole walk reads the rows
once), with one transaction per batch, and reports how many it acted on and how many it
skipped. The rows come already bounded from the caller (the confirmation's pk range, or the
selected ids); `limit` guards against an unbounded selection anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError

from taskboard.conf import conf
from taskboard.models import ACTIVE_STATES, TERMINAL_STATES, TaskExecution
from taskboard.services.executions import executions_record_cancel_request
from taskboard.services.launch import RETRYABLE_STATES, RetryNotPossible, execution_retry
from taskboard.services.manager import TaskManager

logger = logging.getLogger("taskboard.bulk")


def _not_retried_yet() -> Q:
    # Served by the partial index tb_exec_retry_of.
    return ~Q(Exists(TaskExecution.objects.filter(retry_of=OuterRef("pk"))))


# Which of a selection each action applies to; the rest is skipped (and counted).
CANCELLABLE = Q(state__in=sorted(ACTIVE_STATES))
DELETABLE = Q(state__in=sorted(TERMINAL_STATES))


def retryable() -> Q:
    """Failed, revoked or lost, with its call kept, and not retried already: a second bulk
    retry of the same selection enqueues nothing twice. execution_retry has the last word."""
    return Q(state__in=sorted(RETRYABLE_STATES), call__isnull=False) & _not_retried_yet()


@dataclass(frozen=True)
class BulkResult:
    """What a bulk action did."""

    action: str
    total: int  # executions it looked at
    done: int  # cancelled (asked to stop), retried, or deleted
    unsent: int = 0  # cancel: asked, but the revoke broadcast could not be sent

    @property
    def skipped(self) -> int:
        """Already finished (cancel), not retryable (retry), still queued or running
        (delete)."""
        return max(self.total - self.done, 0)


def _staff_only(by: Any) -> None:
    if not getattr(by, "is_staff", False):
        raise PermissionDenied


def _batches(
    rows: QuerySet[TaskExecution], *, fields: tuple[str, ...], size: int, limit: int
) -> Iterator[list[tuple[Any, ...]]]:
    """(pk, *fields) of rows, in batches of `size`, highest pk first, at most `limit`."""
    rows = rows.select_related(None).order_by("-pk")
    seen = 0
    cursor: int | None = None
    while seen < limit:
        page = rows if cursor is None else rows.filter(pk__lt=cursor)
        batch = list(page.values_list("pk", *fields)[: min(size, limit - seen)])
        if not batch:
            return
        seen += len(batch)
        cursor = batch[-1][0]
        yield batch


def executions_cancel(
    *, rows: QuerySet[TaskExecution], by: Any, batch_size: int | None = None
) -> BulkResult:
    """Cancel every queued or running execution of rows, as execution_cancel cancels one:
    record who asked and when (one UPDATE per batch), then revoke the batch's task ids in
    one broadcast. A queued task never runs (the worker that holds or receives it records
    REVOKED); a running one stops at its next progress report. Finished ones are skipped.

    The broadcast goes through Celery's control channel even when cancels normally go
    through Flower (TASKBOARD_REVOKE_VIA_FLOWER): Flower revokes one task per request."""
    _staff_only(by)
    size = batch_size or conf.BULK_BATCH_SIZE
    total = rows.count()
    cancelled = unsent = 0
    candidates = rows.filter(CANCELLABLE)
    for batch in _batches(candidates, fields=("task_id",), size=size, limit=conf.BULK_MAX_ROWS):
        asked = executions_record_cancel_request(
            rows=TaskExecution.objects.filter(pk__in=[r[0] for r in batch]),
            by=by,
            now=timezone.now(),
        )
        cancelled += asked
        if not asked:
            continue
        # A task that finished since the batch was read is revoked too: harmless.
        task_ids = [task_id for _, task_id in batch]
        try:
            TaskManager().revoke_many(task_ids)
        except (OperationalError, OSError):
            logger.exception("taskboard: could not broadcast the revoke of %d tasks", asked)
            unsent += asked
    return BulkResult(action="cancel", total=total, done=cancelled, unsent=unsent)


def executions_retry(
    *, rows: QuerySet[TaskExecution], by: Any, batch_size: int | None = None
) -> BulkResult:
    """Retry every failed, revoked or lost execution of rows through execution_retry (same
    task and arguments, a new execution linked by retry_of, owned by `by`). One transaction
    per batch; its tasks are published when it commits. Executions that cannot be retried
    (other states, arguments not kept, retried already) are skipped."""
    _staff_only(by)
    size = batch_size or conf.BULK_BATCH_SIZE
    total = rows.count()
    retried = 0
    for batch in _batches(rows.filter(retryable()), fields=(), size=size, limit=conf.BULK_MAX_ROWS):
        executions = TaskExecution.objects.filter(pk__in=[r[0] for r in batch]).order_by("-pk")
        with transaction.atomic():
            for execution in executions:
                try:
                    execution_retry(execution=execution, by=by)
                except (PermissionDenied, RetryNotPossible):
                    continue
                retried += 1
    return BulkResult(action="retry", total=total, done=retried)


def executions_delete(
    *, rows: QuerySet[TaskExecution], by: Any, batch_size: int | None = None
) -> BulkResult:
    """Delete the finished executions of rows (SUCCESS, FAILURE, REVOKED, LOST), one batch
    per transaction; queued and running ones are never deleted, only counted as skipped.
    Their notifications go with them; an execution that retried one keeps its row (its
    retry_of becomes empty)."""
    _staff_only(by)
    size = batch_size or conf.BULK_BATCH_SIZE
    total = rows.count()
    deleted = 0
    label = TaskExecution._meta.label
    for batch in _batches(rows.filter(DELETABLE), fields=(), size=size, limit=conf.BULK_MAX_ROWS):
        with transaction.atomic():
            # The state is checked again in the DELETE itself: finished is final, but this
            # keeps "never a running one" true whatever happened since the batch was read.
            _, counts = TaskExecution.objects.filter(
                DELETABLE, pk__in=[r[0] for r in batch]
            ).delete()
        deleted += counts.get(label, 0)
    return BulkResult(action="delete", total=total, done=deleted)
