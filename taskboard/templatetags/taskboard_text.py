"""What taskboard says to people about its data, in the viewer's language: selectors and
services return data, and pages, fragments and e-mails word it here.

    {% load taskboard_text %}
    {{ estimate.seconds|duration }}                  "45 s", "3 min", "2 h 05 min"
    {% notification_text item.state item.label %}    "«Consolidar nómina» failed"
"""

from __future__ import annotations

from django import template
from django.utils.translation import gettext as _

from taskboard.models import TaskState

register = template.Library()


def notification_text(*, state: str, label: str) -> str:
    """What a notification says, in the active language (the viewer's), from the final
    state and the task's label it stored."""
    texts: dict[str, str] = {
        TaskState.SUCCESS: _("«%(label)s» finished"),
        TaskState.FAILURE: _("«%(label)s» failed"),
        TaskState.REVOKED: _("«%(label)s» was cancelled"),
        TaskState.LOST: _("«%(label)s» was lost: its worker went away"),
    }
    text = texts.get(state)
    return text % {"label": label} if text else label


def duration_text(seconds: float) -> str:
    """A short rounded duration for people: "45 s", "3 min", "2 h 05 min"."""
    whole = max(0, round(seconds))
    if whole < 60:
        return _("%(seconds)d s") % {"seconds": whole}
    minutes = round(whole / 60)
    if minutes < 60:
        return _("%(minutes)d min") % {"minutes": minutes}
    hours, minutes = divmod(minutes, 60)
    return _("%(hours)d h %(minutes)02d min") % {"hours": hours, "minutes": minutes}


@register.filter(name="duration")
def duration_filter(seconds: float | None) -> str:
    return duration_text(seconds or 0)


@register.simple_tag(name="notification_text")
def notification_text_tag(state: str, label: str) -> str:
    return notification_text(state=state, label=label)
