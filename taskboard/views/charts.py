"""Server-side charts: coordinates computed here, drawn as inline SVG by a template."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    when: datetime
    value: float
    count: int


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    left: int  # plot area, inside the margins left for the axis labels
    top: int
    right: int
    bottom: int
    points: list[ChartPoint]
    y_max: float
    start: datetime
    end: datetime

    @property
    def polyline(self) -> str:
        """The `points` attribute of an SVG <polyline>."""
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


def line_chart(
    *,
    series: Sequence[tuple[datetime, float, int]],
    start: datetime,
    end: datetime,
    width: int = 640,
    height: int = 180,
) -> LineChart | None:
    """Place (when, value, count) points on a time axis from start to end and a value axis
    from 0 to the largest value; None when there is nothing to draw."""
    if not series:
        return None
    left, top, right, bottom = 56, 12, width - 12, height - 28
    span = max((end - start).total_seconds(), 1.0)
    y_max = max(value for _, value, _ in series) or 1.0

    def x_of(when: datetime) -> float:
        fraction = min(max((when - start).total_seconds() / span, 0.0), 1.0)
        return left + fraction * (right - left)

    def y_of(value: float) -> float:
        return bottom - (value / y_max) * (bottom - top)

    points = [
        ChartPoint(x=x_of(when), y=y_of(value), when=when, value=value, count=count)
        for when, value, count in series
    ]
    return LineChart(
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        points=points,
        y_max=y_max,
        start=start,
        end=end,
    )
