"""{% execution_eta execution as estimate %}: a task's time left (running) or its typical
duration (queued), for the list's progress cell, the progress fragment and the detail page.

The list computes a whole page's estimates at once (taskboard.tables.task_table); anywhere
else the first use on an execution asks the database (only for a queued task) and the
second one, e.g. the detail page's, reuses the answer.
"""

from __future__ import annotations

from typing import Any

from django import template

from taskboard.models import TaskExecution
from taskboard.selectors.estimates import Estimate, execution_estimate

register = template.Library()


@register.simple_tag
def execution_eta(execution: Any) -> Estimate | None:
    if not isinstance(execution, TaskExecution):
        return None
    return execution_estimate(execution=execution)
