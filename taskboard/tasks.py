"""taskboard's own periodic jobs (Celery beat runs them; see CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from taskboard.services.alerts import (
    ALERTS_QUEUE,
    DELIVER_TASK,
    WebhookRefused,
    alert_delivery_send,
    alerts_evaluate,
)
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


@shared_task(name="taskboard.evaluate_alerts", ignore_result=True, queue=ALERTS_QUEUE)
def evaluate_alerts() -> int:
    """Evaluate every enabled alert rule once (never two evaluations at a time); how many
    transitions it made."""
    evaluation = alerts_evaluate()
    return 0 if evaluation is None else len(evaluation.fired) + len(evaluation.resolved)


@shared_task(
    name=DELIVER_TASK,
    ignore_result=True,
    queue=ALERTS_QUEUE,
    autoretry_for=(OSError, WebhookRefused),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=6,
)
def alert_deliver(delivery_id: int) -> bool:
    """Send one alert e-mail or webhook POST (a timeout per attempt; retried with backoff
    on a network or HTTP error). Sent once: a delivery that went out is not sent again."""
    return alert_delivery_send(delivery_id=delivery_id)
