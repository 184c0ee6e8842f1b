"""Server-side charts: coordinates computed here, drawn as inline SVG by a template
(templates/taskboard/module.html), coloured by classes in static/taskboard/charts.css.

But for the outcomes chart's bars, whose markup is written here (bar_markup): 24 bars with a
localised tooltip each were half of the module page's render time in the template engine
(two blocktranslates, dates and a dozen filtered variables per bar; measured at 1M rows),
and format_html writes them in a fraction of it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.utils import timezone
from django.utils.formats import date_format, localize, time_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, ngettext

from taskboard.selectors.stats import DayDurations, HourOutcomes


@dataclass(frozen=True)
class Plot:
    """The drawing and, inside its margins (room for the axis labels), the plot area."""

    width: int = 600
    height: int = 220
    left: int = 52
    top: int = 14
    right: int = 588
    bottom: int = 188

    @property
    def label_y(self) -> int:
        """Baseline of the time axis' labels."""
        return self.bottom + 18

    @property
    def inner_height(self) -> int:
        return self.bottom - self.top

    @property
    def value_label_x(self) -> int:
        """Right end of the value axis' labels."""
        return self.left - 6


@dataclass(frozen=True)
class Tick:
    y: float
    value: float

    @property
    def label_y(self) -> float:
        """Baseline of its label, centred on the line."""
        return self.y + 4


def nice_step(span: float, *, steps: int = 4, whole: bool = False) -> float:
    """A round step (1, 2 or 5 × 10ⁿ) that divides 0..span in about `steps` parts; at least
    1 when the values are counts (`whole`)."""
    if span <= 0:
        return 1.0
    raw = span / steps
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step: float = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return max(step, 1.0) if whole else step


def value_axis(plot: Plot, largest: float, *, whole: bool) -> tuple[float, list[Tick]]:
    """The axis' top value (a multiple of a round step, at least `largest`) and its ticks."""
    step = nice_step(largest, whole=whole)
    top = step * max(math.ceil(largest / step - 1e-9), 1)
    count = round(top / step)
    ticks = [
        Tick(y=plot.bottom - (i / count) * (plot.bottom - plot.top), value=round(i * step, 6))
        for i in range(count + 1)
    ]
    return top, ticks


@dataclass(frozen=True)
class Segment:
    kind: str  # succeeded, failed or other: the class that colours it
    y: float
    height: float
    value: int


@dataclass(frozen=True)
class Bar:
    hour: HourOutcomes
    x: float
    width: float
    segments: list[Segment]  # bottom up; none for an empty hour
    labelled: bool  # its time is written under the axis

    @property
    def center(self) -> float:
        return self.x + self.width / 2


@dataclass(frozen=True)
class OutcomesChart:
    plot: Plot
    bars: list[Bar]
    ticks: list[Tick]
    y_max: float

    @property
    def bars_markup(self) -> SafeString:
        return mark_safe("".join(bar_markup(bar, self.plot) for bar in self.bars))  # noqa: S308


OUTCOME_KINDS = ("succeeded", "failed", "other")
LABEL_EVERY_HOURS = 6


def bar_markup(bar: Bar, plot: Plot) -> SafeString:
    """One hour's bar as SVG: its group (data attributes, a tooltip, a transparent rectangle
    to hover, a rectangle per outcome) and, every LABEL_EVERY_HOURS, its time under the
    axis. In the viewer's language and time zone, as the template's filters would."""
    hour = bar.hour
    start = timezone.localtime(hour.start)
    tasks = ngettext("%(total)s task", "%(total)s tasks", hour.total) % {
        "total": localize(hour.total)
    }
    outcomes = gettext("%(succeeded)s succeeded, %(failed)s failed or lost, %(other)s other") % {
        "succeeded": localize(hour.succeeded),
        "failed": localize(hour.failed),
        "other": localize(hour.other),
    }
    x, width = f"{bar.x:.1f}", f"{bar.width:.1f}"  # format_html escapes to text first
    segments = format_html_join(
        "",
        '<rect class="segment {}" data-value="{}" x="{}" y="{}" width="{}" height="{}"/>',
        ((s.kind, s.value, x, f"{s.y:.1f}", width, f"{s.height:.1f}") for s in bar.segments),
    )
    group = format_html(
        '<g class="bar" data-hour="{}" data-succeeded="{}" data-failed="{}" data-other="{}">'
        "<title>{}: {} ({})</title>"
        '<rect class="hit" x="{}" y="{}" width="{}" height="{}" fill="none"'
        ' pointer-events="all"/>{}</g>',
        start.isoformat(),
        hour.succeeded,
        hour.failed,
        hour.other,
        date_format(start, "SHORT_DATETIME_FORMAT"),
        tasks,
        outcomes,
        x,
        plot.top,
        width,
        plot.inner_height,
        segments,
    )
    if not bar.labelled:
        return group
    label = format_html(
        '<text class="label" x="{}" y="{}" text-anchor="middle">{}</text>',
        f"{bar.center:.1f}",
        plot.label_y,
        time_format(start, "H:i"),
    )
    return group + label  # safe + safe stays safe


def outcomes_chart(hours: Sequence[HourOutcomes], plot: Plot | None = None) -> OutcomesChart | None:
    """One stacked bar per hour (succeeded, failed or lost, other from the bottom up);
    None when no hour has a task."""
    largest = max((hour.total for hour in hours), default=0)
    if largest == 0:
        return None
    plot = plot or Plot()
    y_max, ticks = value_axis(plot, largest, whole=True)
    slot = (plot.right - plot.left) / len(hours)
    gap = min(slot * 0.2, 4.0)
    scale = (plot.bottom - plot.top) / y_max
    bars = []
    for index, hour in enumerate(hours):
        segments = []
        base = float(plot.bottom)
        for kind in OUTCOME_KINDS:
            value = int(getattr(hour, kind))
            if value:
                height = value * scale
                base -= height
                segments.append(Segment(kind=kind, y=base, height=height, value=value))
        # The newest hour is labelled, and every sixth before it.
        labelled = (len(hours) - 1 - index) % LABEL_EVERY_HOURS == 0
        bars.append(
            Bar(
                hour=hour,
                x=plot.left + index * slot + gap / 2,
                width=slot - gap,
                segments=segments,
                labelled=labelled,
            )
        )
    return OutcomesChart(plot=plot, bars=bars, ticks=ticks, y_max=y_max)


@dataclass(frozen=True)
class DurationColumn:
    day: DayDurations
    x: float  # the day's centre on the time axis
    p50_y: float | None
    p95_y: float | None

    @property
    def p95_marker(self) -> str:
        """The `d` of the p95 point's diamond (the p50 one is a circle): two lines told
        apart by shape and dash, not by colour alone."""
        if self.p95_y is None:
            return ""
        return f"M{self.x:.1f},{self.p95_y - 5:.1f} l5,5 l-5,5 l-5,-5 z"


@dataclass(frozen=True)
class DurationChart:
    plot: Plot
    columns: list[DurationColumn]
    ticks: list[Tick]
    y_max: float

    @property
    def p50_points(self) -> str:
        """The `points` attribute of the p50 <polyline> (days without runs skipped)."""
        return _points((c.x, c.p50_y) for c in self.columns)

    @property
    def p95_points(self) -> str:
        return _points((c.x, c.p95_y) for c in self.columns)


def _points(pairs: Iterable[tuple[float, float | None]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in pairs if y is not None)


def durations_chart(days: Sequence[DayDurations], plot: Plot | None = None) -> DurationChart | None:
    """A point per day with successful runs on a p50 line and a p95 line; None when no
    day had one."""
    largest = max((day.p95 or day.p50 or 0.0 for day in days if day.count), default=None)
    if largest is None:
        return None
    plot = plot or Plot()
    y_max, ticks = value_axis(plot, largest, whole=False)
    slot = (plot.right - plot.left) / len(days)

    def y_of(value: float | None) -> float | None:
        return None if value is None else plot.bottom - value / y_max * (plot.bottom - plot.top)

    columns = [
        DurationColumn(
            day=day,
            x=plot.left + (index + 0.5) * slot,
            p50_y=y_of(day.p50),
            p95_y=y_of(day.p95),
        )
        for index, day in enumerate(days)
    ]
    return DurationChart(plot=plot, columns=columns, ticks=ticks, y_max=y_max)
