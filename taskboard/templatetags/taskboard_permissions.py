"""Templates ask the same permission rule as views: ``{% load taskboard_permissions %}``,
then ``{% if user|is_operator %}`` or ``{% if execution|controllable_by:user %}``."""

from __future__ import annotations

from typing import Any

from django import template

from taskboard import permissions
from taskboard.models import TaskExecution

register = template.Library()


@register.filter
def is_operator(user: Any) -> bool:
    return permissions.is_operator(user)


@register.filter
def controllable_by(execution: Any, user: Any) -> bool:
    return isinstance(execution, TaskExecution) and permissions.can_control(user, execution)
