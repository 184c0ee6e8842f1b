"""What taskboard says to people about its data, in the viewer's language: selectors and
services return data, and pages, fragments and e-mails word it here.

    {% load taskboard_text %}
    {{ estimate.seconds|duration }}                  "< 1 s", "45 s", "3 min", "2 h 05 min"
    {% notification_text item.state item.label %}    "«Consolidar nómina» failed"
    {% notification_text item.state item.label item.after_lost %}  "… finished after all: …"
    {{ failure|source_failure_text }}  {{ snapshot.source|source_label }}   the workers panel
"""

from __future__ import annotations

from django import template
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from taskboard.models import TaskState
from taskboard.services.workers import FlowerInfo, SourceFailure

register = template.Library()


def notification_text(*, state: str, label: str, after_lost: bool = False) -> str:
    """What a notification says, in the active language (the viewer's), from the final
    state and the task's label it stored; after_lost: the task had been marked lost and
    its worker finished it after all."""
    if after_lost and state == TaskState.SUCCESS:
        return _("«%(label)s» finished after all: it had been marked lost") % {"label": label}
    if after_lost and state == TaskState.FAILURE:
        return _("«%(label)s» finished after all, and failed: it had been marked lost") % {
            "label": label
        }
    texts: dict[str, str] = {
        TaskState.SUCCESS: _("«%(label)s» finished"),
        TaskState.FAILURE: _("«%(label)s» failed"),
        TaskState.REVOKED: _("«%(label)s» was cancelled"),
        TaskState.LOST: _("«%(label)s» was lost: its worker went away"),
    }
    text = texts.get(state)
    return text % {"label": label} if text else label


def duration_text(seconds: float) -> str:
    """A short rounded duration for people: "< 1 s", "45 s", "3 min", "2 h 05 min"."""
    if seconds < 0.5:  # never "0 s": it ran, just briefly
        return _("< 1 s")
    whole = round(seconds)
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
def notification_text_tag(state: str, label: str, after_lost: bool = False) -> str:
    return notification_text(state=state, label=label, after_lost=bool(after_lost))


def source_failure_text(failure: SourceFailure) -> str:
    """Said in the viewer's language (the snapshot is cached, so not translated early)."""
    detail = failure.detail
    messages = {
        "unreachable": _("Flower is not reachable (%(detail)s)."),
        "timeout": _("Flower did not answer in time."),
        "auth": _("Flower rejected the credentials."),
        "bad_response": _("Flower answered with an error (%(detail)s)."),
        "no_heartbeats": _("No worker has recorded a heartbeat yet."),
        "no_workers": _("No worker answered within %(detail)s s."),
        "broker": _("The broker could not be reached (%(detail)s)."),
    }
    text = messages.get(failure.reason)
    return detail if text is None else text % {"detail": detail}


def flower_info_text(info: FlowerInfo) -> str:
    if not info.configured:
        return _("Flower is not configured (FLOWER_URL is empty).")
    if info.reachable:
        return ngettext(
            "Flower answers; %(count)d worker online.",
            "Flower answers; %(count)d workers online.",
            info.workers,
        ) % {"count": info.workers}
    return source_failure_text(SourceFailure("flower", info.error, info.detail))


def source_label(name: str) -> str:
    labels = {
        "flower": _("Flower"),
        "heartbeats": _("worker heartbeats"),
        "inspect": _("Celery inspect"),
        "none": _("no source"),
    }
    return labels.get(name, name)


register.filter("source_failure_text", source_failure_text)
register.filter("source_label", source_label)
