"""Django signals taskboard sends, for code that reacts to executions changing.

from django.dispatch import receiver
from taskboard.signals import execution_changed, executions_finished

@receiver(execution_changed)
def on_change(sender, lookup, state, fields, **kwargs): ...

@receiver(executions_finished)
def on_finished(sender, lookups, **kwargs): ...
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.dispatch import Signal

from taskboard.models import TaskExecution

logger = logging.getLogger("taskboard.tracking")

# Sent after a tracking write changed an execution's row. Arguments: lookup (("task_id",
# id) or ("pk", n)), state (the new state, or None for a fields-only write), fields.
execution_changed = Signal()


# Sent once per batch of tracking writes (and by reconciliation) for the executions the
# batch moved into a final state (SUCCESS, FAILURE, REVOKED, LOST): a duplicate final write
# changes no row, so it is not announced again. Argument: lookups, a list of ("task_id",
# id) or ("pk", n). Receivers run inside tracking (a worker's flushing thread): keep them
# quick; an exception is logged, never raised (executions_finished_send).
executions_finished = Signal()


def executions_finished_send(lookups: Sequence[tuple[str, Any]]) -> None:
    """Send executions_finished for lookups (nothing when empty), robustly."""
    if not lookups:
        return
    answers = executions_finished.send_robust(sender=TaskExecution, lookups=list(lookups))
    for receiver, answer in answers:
        if isinstance(answer, Exception):
            logger.error("taskboard: %r failed on executions_finished", receiver, exc_info=answer)
