"""Cancel in one place: who may, the record of who asked, and delivery to the workers.

A cancel is recorded first (who asked and when, one UPDATE, only while the task is queued or
running), then delivered by TaskManager: Celery's own broadcast (`app.control.revoke`)
always works; Flower's revoke is used instead when FLOWER_URL is set and
TASKBOARD_REVOKE_VIA_FLOWER is on (e.g. when Flower is the only process allowed to
broadcast), and a Flower that fails falls back to the broadcast, so a cancel never depends on
Flower being up. A queued task never runs; a running one stops at its next progress report
(cooperative), or at once when staff terminate it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from celery import Celery, current_app
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from taskboard.conf import conf
from taskboard.models import TaskExecution, TaskExecutionQuerySet
from taskboard.permissions import Viewer, can_control, can_terminate, is_operator
from taskboard.services.bulk import BulkResult
from taskboard.services.workers.broker import (
    BrokerUnavailable,
    broker_connection,
    broker_errors,
    failure_reason,
)
from taskboard.services.workers.flower import FlowerError, FlowerService
from taskboard.tracking.stamps import stamp_bump

logger = logging.getLogger(__name__)

UNSENT_ERRORS: tuple[type[BaseException], ...] = (*broker_errors(), OSError)


def execution_cancel(*, execution: TaskExecution, by: Viewer, terminate: bool = False) -> bool:
    """Ask Celery to revoke the task (terminate: kill it if running), through TaskManager.
    Records who asked and when.

    Raises PermissionDenied unless `by` may control it (and, to terminate, is staff).
    False when the task had already finished: nothing to cancel. Raises BrokerUnavailable
    when the revoke could not be broadcast: the cancel is recorded all the same (a queued
    task is refused by every worker that starts, a running one stops at its next progress
    report).
    """
    if not can_control(by, execution):
        raise PermissionDenied
    if terminate and not can_terminate(by, execution):
        raise PermissionDenied
    now = timezone.now()
    rows = TaskExecution.objects.filter(pk=execution.pk)
    if not executions_record_cancel_request(rows=rows, by=by, now=now):
        return False
    execution.cancel_requested_by = by  # type: ignore[assignment]
    execution.cancel_requested_at = now
    try:
        TaskManager().revoke(execution.task_id, terminate=terminate)
    except broker_errors() as exc:
        logger.warning("taskboard: could not broadcast the revoke of %s", execution.task_id)
        raise BrokerUnavailable(failure_reason(exc), (execution.task_id,)) from exc
    return True


def executions_record_cancel_request(
    *, rows: TaskExecutionQuerySet, by: Viewer, now: datetime
) -> int:
    """Record that `by` asked at `now` to cancel those of rows still queued or running (one
    UPDATE); how many. Finished ones are left as they are."""
    count = rows.active().update(cancel_requested_by=by, cancel_requested_at=now, updated_at=now)
    if count:
        stamp_bump()
    return count


def executions_cancel(
    *, rows: TaskExecutionQuerySet, by: Viewer, batch_size: int | None = None
) -> BulkResult:
    """Cancel every queued or running execution of rows, as execution_cancel cancels one:
    record who asked and when (one UPDATE per batch), then revoke the batch's task ids in
    one broadcast. A queued task never runs (the worker that holds or receives it records
    REVOKED); a running one stops at its next progress report. Finished ones are skipped.

    The broadcast goes through Celery's control channel even when cancels normally go
    through Flower (TASKBOARD_REVOKE_VIA_FLOWER): Flower revokes one task per request."""
    if not is_operator(by):
        raise PermissionDenied
    size = batch_size or conf.BULK_BATCH_SIZE
    total = rows.count()
    cancelled = unsent = 0
    # Every matching row, one batch in memory at a time.
    for batch in rows.active().batches(size=size, fields=("task_id",)):
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
        except UNSENT_ERRORS:
            logger.exception("taskboard: could not broadcast the revoke of %d tasks", asked)
            unsent += asked
    return BulkResult(action="cancel", total=total, done=cancelled, unsent=unsent)


# --- Delivery -------------------------------------------------------------------------------

RevokeChannel = Literal["flower", "control"]

TERMINATE_SIGNAL = "SIGTERM"  # what Flower sends too: the task's process may clean up


class TaskManager:
    """Cancel (revoke) and terminate Celery tasks by id."""

    def __init__(self, app: Celery | None = None) -> None:
        self._app = app

    @property
    def app(self) -> Celery:
        return self._app if self._app is not None else current_app

    def flower(self) -> FlowerService | None:
        """The Flower to revoke through, or None when revoking by broadcast."""
        if not conf.REVOKE_VIA_FLOWER:
            return None
        return FlowerService.from_settings()

    def revoke(self, task_id: str, *, terminate: bool = False) -> RevokeChannel:
        """Revoke task_id: a queued task never runs; with terminate a running one is
        killed (SIGTERM). Returns the channel that carried it."""
        flower = self.flower()
        if flower is not None:
            try:
                flower.revoke(task_id, terminate=terminate)
            except FlowerError as exc:
                logger.warning(
                    "Revoking %s through Flower failed (%s: %s); using Celery's broadcast",
                    task_id,
                    exc.code,
                    exc,
                )
            else:
                return "flower"
        with broker_connection(self.app) as connection:
            self.app.control.revoke(
                task_id, terminate=terminate, signal=TERMINATE_SIGNAL, connection=connection
            )
        return "control"

    def revoke_many(self, task_ids: list[str]) -> RevokeChannel:
        """Revoke queued tasks in one broadcast (a running one stops at its next progress
        report). Always Celery's channel: Flower revokes one task per request."""
        with broker_connection(self.app) as connection:
            self.app.control.revoke(task_ids, connection=connection)
        return "control"
