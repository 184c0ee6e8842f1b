"""taskboard's own periodic jobs (Celery beat runs them; see CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from taskboard.services.notifications import EMAIL_TASK, notifications_email
from taskboard.services.reconcile import executions_mark_lost
from taskboard.services.retention import executions_prune, retention_cutoff

# On its own queue (RECONCILE_QUEUE), so it never waits behind the work it reconciles; the
# web runs the same service too (services.reconcile.reconcile_from_web), so it runs even
# when no worker does.
RECONCILE_QUEUE = "taskboard"


@shared_task(name="taskboard.mark_lost", ignore_result=True, queue=RECONCILE_QUEUE)
def mark_lost() -> int:
    """Rows whose worker is gone, or that no worker runs any more, become LOST."""
    return executions_mark_lost()


@shared_task(name="taskboard.prune", ignore_result=True)
def prune() -> int:
    """Finished executions older than TASKBOARD_RETENTION_DAYS are deleted, in batches."""
    cutoff = retention_cutoff()
    return 0 if cutoff is None else executions_prune(older_than=cutoff)


@shared_task(
    name=EMAIL_TASK,
    ignore_result=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=3,
)
def email_notifications(execution_ids: list[int]) -> int:
    """E-mail the failure notifications of these executions to the owners who asked for it
    (enqueued once they exist; never sent from tracking's own thread). Each goes out once."""
    return notifications_email(execution_ids=execution_ids)
