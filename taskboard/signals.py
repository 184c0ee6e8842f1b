"""Django signals taskboard sends, for code that reacts to executions changing.

from django.dispatch import receiver
from taskboard.signals import execution_changed

@receiver(execution_changed)
def on_change(sender, lookup, state, fields, **kwargs): ...
"""

from __future__ import annotations

from django.dispatch import Signal

# Sent after a tracking write changed an execution's row. Arguments: lookup (("task_id",
# id) or ("pk", n)), state (the new state, or None for a fields-only write), fields.
execution_changed = Signal()
