"""Times as people read them, in the viewer's language and the site's time zone.

    {% load taskboard_time %}
    {% when execution.started_at %}            <time datetime="…" title="3 de diciembre de 2026,
                                               07:01:53 CET">hace 3 minutos</time>
    {% when execution.started_at "absolute" %} the same element reading "03/12/2026 07:01"

The element carries the exact instant (datetime, ISO 8601) and, on hover, the absolute time
with its zone; "—" when there is no time. A relative one is marked data-taskboard-relative:
taskboard.js writes it again every 30 s, so a page need not be rendered again for time to pass.
"""

from __future__ import annotations

from datetime import datetime

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

STYLES = ("relative", "absolute")


def absolute_text(value: datetime) -> str:
    """ "3 de diciembre de 2026, 07:01:53 CET": the full time and its zone."""
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return f"{date_format(local, 'DATETIME_FORMAT')} {local.strftime('%Z')}".strip()


@register.simple_tag(name="when")
def when(value: datetime | None, style: str = "relative") -> SafeString | str:
    if value is None or value == "":
        return "—"
    if style not in STYLES:
        raise template.TemplateSyntaxError(f"when: style must be one of {STYLES}, not {style!r}")
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    text = (
        date_format(local, "SHORT_DATETIME_FORMAT") if style == "absolute" else naturaltime(value)
    )
    # A relative time is kept true in the browser (taskboard.js rewrites it every 30 s).
    return format_html(
        '<time datetime="{}" title="{}"{}>{}</time>',
        local.isoformat(timespec="seconds"),
        absolute_text(value),
        " data-taskboard-relative" if style == "relative" else "",
        text,
    )
