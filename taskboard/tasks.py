"""taskboard's own periodic jobs (Celery beat runs them; see CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from taskboard.services.reconcile import executions_mark_lost


@shared_task(name="taskboard.mark_lost", ignore_result=True)
def mark_lost() -> int:
    """Running tasks whose worker is gone become LOST."""
    return executions_mark_lost()
