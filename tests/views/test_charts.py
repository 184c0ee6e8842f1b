"""The module page's charts: a bar per hour and a point per day, with the numbers of known
rows, their tooltips, accessible names and table fallbacks; the selectors under them and
the page's query count."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import override

from taskboard.models import TaskState
from taskboard.selectors.stats import (
    day_starts,
    hour_starts,
    module_daily_durations,
    module_hourly_outcomes,
    module_windows,
    nearest_rank,
    percentiles_in_sql,
)
from taskboard.views.charts import Plot, durations_chart, nice_step, outcomes_chart
from tests.factories import client_for, make_execution, make_history, make_user

EN = {"Accept-Language": "en"}
ES = {"Accept-Language": "es"}


@pytest.fixture
def now(monkeypatch):
    """A fixed instant, half past noon today in the site's time zone, so the rows fall in
    known hours and days however close to an hour's end the test runs."""
    today = timezone.localdate()
    fixed = timezone.make_aware(datetime.combine(today, time(12, 30)))
    monkeypatch.setattr(timezone, "now", lambda: fixed)
    return fixed


def module_url(module: str = "nomina") -> str:
    return reverse("taskboard:module", args=[module])


def make_known_rows(now: datetime) -> tuple[list[datetime], list[datetime]]:
    """In the hour starting at 12:00 today: 2 successes, 1 failure, 1 lost, 1 revoked,
    1 running; 12 hours earlier: 3 successes; 23 hours earlier (the first bar): 1 failure.
    Successful durations: today 1, 2, 3, 4, 10 s (with the 2 of 12:00 and the 3 of 00:00);
    two days ago 5 s. Another module and a row 8 days old must not count."""
    hours = hour_starts(hours=24, now=now)
    days = day_starts(days=7, now=now)
    noon, midnight, first = hours[-1], hours[-13], hours[0]
    assert midnight == days[-1]  # 00:00 today: the 12 hours before noon
    for duration in (1.0, 2.0):
        make_execution(state=TaskState.SUCCESS, duration=duration, created_at=noon)
    make_execution(state=TaskState.FAILURE, created_at=noon + timedelta(minutes=5))
    make_execution(state=TaskState.LOST, created_at=noon + timedelta(minutes=6))
    make_execution(state=TaskState.REVOKED, created_at=noon + timedelta(minutes=7))
    make_execution(state=TaskState.PROGRESS, created_at=noon + timedelta(minutes=8))
    for duration in (3.0, 4.0, 10.0):
        make_execution(
            state=TaskState.SUCCESS, duration=duration, created_at=midnight + timedelta(minutes=1)
        )
    make_execution(state=TaskState.FAILURE, created_at=first + timedelta(minutes=59))
    make_execution(state=TaskState.SUCCESS, duration=5.0, created_at=days[-3] + timedelta(hours=9))
    make_execution(module="contabilidad", state=TaskState.FAILURE, created_at=noon)
    make_execution(state=TaskState.SUCCESS, duration=99.0, created_at=now - timedelta(days=8))
    return hours, days


def bar(html: str, start: datetime) -> str:
    iso = timezone.localtime(start).isoformat()
    found = re.search(rf'<g class="bar" data-hour="{re.escape(iso)}"[^>]*>.*?</g>', html, re.S)
    assert found, f"no bar for {iso}"
    return found[0]


# Selectors


def test_nearest_rank_is_percentile_disc():
    assert nearest_rank([], 0.5) is None
    assert nearest_rank([4.0, 1.0, 3.0, 2.0], 0.5) == 2.0  # the lower middle
    assert nearest_rank([1.0, 2.0, 3.0, 4.0, 10.0], 0.5) == 3.0
    assert nearest_rank([1.0, 2.0, 3.0, 4.0, 10.0], 0.95) == 10.0
    assert nearest_rank([float(v) for v in range(1, 21)], 0.95) == 19.0


def test_hourly_outcomes_have_every_hour(db, now, django_assert_num_queries):
    hours, _ = make_known_rows(now)
    with django_assert_num_queries(1):
        outcomes = module_hourly_outcomes(module="nomina", hours=24, now=now)
    assert [o.start for o in outcomes] == hours and len(outcomes) == 24
    last = outcomes[-1]
    assert (last.succeeded, last.failed, last.other, last.total) == (2, 2, 2, 6)
    assert (outcomes[-13].succeeded, outcomes[-13].total) == (3, 3)
    assert (outcomes[0].failed, outcomes[0].total) == (1, 1)
    assert sum(o.total for o in outcomes) == 10


def test_daily_durations_per_day(db, now, django_assert_num_queries):
    _, days = make_known_rows(now)
    with django_assert_num_queries(1):
        durations = module_daily_durations(module="nomina", days=7, now=now)
    assert [d.start for d in durations] == days
    today, two_days_ago = durations[-1], durations[-3]
    assert (today.count, today.p50, today.p95) == (5, 3.0, 10.0)
    assert (two_days_ago.count, two_days_ago.p50, two_days_ago.p95) == (1, 5.0, 5.0)
    assert [d.count for d in durations] == [0, 0, 0, 0, 1, 0, 5]
    assert durations[0].p50 is None and durations[0].p95 is None


def test_windows_in_one_pass(db, now, django_assert_num_queries):
    make_known_rows(now)
    with django_assert_num_queries(2 if percentiles_in_sql() else 3):
        day, week = module_windows(module="nomina", days=(1, 7), now=now)
    assert (day.total, week.total) == (10, 11)
    assert (day.p50_duration, day.p95_duration) == (3.0, 10.0)
    assert (week.p50_duration, week.p95_duration) == (3.0, 10.0)  # 1, 2, 3, 4, 5, 10
    assert week.avg_duration == pytest.approx(25 / 6)
    assert day.running == week.running == 1
    assert day.counts[TaskState.LOST] == 1 and week.counts[TaskState.SUCCESS] == 6


# Geometry


def test_nice_steps():
    assert nice_step(3, whole=True) == 1
    assert nice_step(17, whole=True) == 5
    assert nice_step(10.0) == 5
    assert nice_step(0.3) == pytest.approx(0.1)
    assert nice_step(0) == 1


def test_bars_stack_from_the_axis_up(db, now):
    make_known_rows(now)
    hours = module_hourly_outcomes(module="nomina", hours=24, now=now)
    chart = outcomes_chart(hours)
    assert chart is not None and len(chart.bars) == 24
    plot = chart.plot
    scale = (plot.bottom - plot.top) / chart.y_max
    last = chart.bars[-1]
    assert [s.kind for s in last.segments] == ["succeeded", "failed", "other"]
    assert [s.value for s in last.segments] == [2, 2, 2]
    assert last.segments[0].y + last.segments[0].height == pytest.approx(plot.bottom)
    assert last.segments[-1].y == pytest.approx(plot.bottom - 6 * scale)
    assert chart.bars[1].segments == []  # an empty hour: no rectangle
    assert all(plot.left <= b.x and b.x + b.width <= plot.right for b in chart.bars)
    assert [t.value for t in chart.ticks] == [0, 2, 4, 6]
    assert [b.labelled for b in chart.bars].count(True) == 4  # every 6 hours, the last too
    assert outcomes_chart([h.__class__(start=h.start) for h in hours]) is None


def test_duration_points_on_their_days(db, now):
    make_known_rows(now)
    chart = durations_chart(module_daily_durations(module="nomina", days=7, now=now))
    assert chart is not None and chart.y_max == 10
    plot = Plot()
    today = chart.columns[-1]
    assert today.p95_y == pytest.approx(plot.top) and today.x < plot.right
    assert today.p50_y == pytest.approx(plot.bottom - 0.3 * (plot.bottom - plot.top))
    assert len(chart.p50_points.split()) == len(chart.p95_points.split()) == 2
    assert durations_chart(module_daily_durations(module="nadie", now=now)) is None


# The page


def test_page_draws_a_bar_per_hour_with_its_numbers_and_tooltip(staff, now):
    hours, _ = make_known_rows(now)
    html = client_for(staff).get(module_url(), headers=EN).content.decode()
    assert html.count('<g class="bar"') == 24
    noon = bar(html, hours[-1])
    assert 'data-succeeded="2" data-failed="2" data-other="2"' in noon
    assert noon.count('<rect class="segment') == 3
    with override("en"):
        when = date_format(timezone.localtime(hours[-1]), "SHORT_DATETIME_FORMAT")
    assert f"<title>{when}: 6 tasks (2 succeeded, 2 failed or lost, 2 other)</title>" in noon
    empty = bar(html, hours[1])
    assert "<title>" in empty and '<rect class="segment' not in empty
    assert '<rect class="hit"' in empty  # its tooltip has somewhere to be hovered


def test_tooltips_follow_the_viewers_language(staff, now):
    hours, days = make_known_rows(now)
    html = client_for(staff).get(module_url(), headers=ES).content.decode()
    with override("es"):
        when = date_format(timezone.localtime(hours[-1]), "SHORT_DATETIME_FORMAT")
        day = date_format(days[-1], "SHORT_DATE_FORMAT")
    assert f"<title>{when}: " in bar(html, hours[-1])
    assert f"<title>{day}: p50 3,00 s" in html and f"<title>{day}: p95 10,00 s" in html


def test_page_draws_a_point_per_day_with_p50_and_p95(staff, now):
    _, days = make_known_rows(now)
    html = client_for(staff).get(module_url(), headers=EN).content.decode()
    points = re.findall(
        r'<g class="day" data-day="([^"]+)" data-p50="([^"]+)" data-p95="([^"]+)"'
        r' data-runs="(\d+)"',
        html,
    )
    assert points == [
        (days[-3].date().isoformat(), "5.00", "5.00", "1"),
        (days[-1].date().isoformat(), "3.00", "10.00", "5"),
    ]
    assert (
        html.count('<circle class="point p50"') == 2 and html.count('<path class="point p95"') == 2
    )
    with override("en"):
        day = date_format(days[-1], "SHORT_DATE_FORMAT")
    assert f"<title>{day}: p50 3.00 s (5 runs)</title>" in html
    assert f"<title>{day}: p95 10.00 s (5 runs)</title>" in html
    assert 'class="line p50"' in html and 'class="line p95"' in html


def test_charts_have_accessible_names_and_table_fallbacks(staff, now):
    hours, days = make_known_rows(now)
    html = client_for(staff).get(module_url(), headers=EN).content.decode()
    for name in ("outcomes", "durations"):
        assert f'role="img" aria-labelledby="{name}-title {name}-desc"' in html
        assert f'<title id="{name}-title">' in html and f'<desc id="{name}-desc">' in html
        assert f'<details class="chart-table" id="{name}-table">' in html
    table = html.split('id="outcomes-table"')[1].split("</details>")[0]
    assert table.count('<th scope="col"') == 5 and table.count('<th scope="row">') == 24
    noon = timezone.localtime(hours[-1]).isoformat()
    row = re.search(rf'<tr data-hour="{re.escape(noon)}">(.*?)</tr>', table)
    assert row and re.findall(r'<td class="num">(\d+)</td>', row[1]) == ["2", "2", "2", "6"]
    assert "<time datetime=" in row[1]
    table = html.split('id="durations-table"')[1].split("</details>")[0]
    assert table.count('<th scope="row">') == 7
    today = re.search(rf'<tr data-day="{days[-1].date().isoformat()}">(.*?)</tr>', table)
    assert today and re.findall(r'<td class="num">([^<]+)</td>', today[1]) == [
        "5",
        "3.00 s",
        "10.00 s",
    ]
    assert table.count("—") == 10  # five empty days, p50 and p95 each


def test_page_has_no_style_attributes_nor_literal_colours(staff, now):
    make_known_rows(now)
    html = client_for(staff).get(module_url()).content.decode()
    assert " style=" not in html  # the CSP forbids them
    charts = re.findall(r'<svg class="chart.*?</svg>', html, re.S)
    assert len(charts) == 2
    for chart in charts:  # colours come from classes in charts.css
        assert not re.search(r'(fill|stroke)="(?!none)', chart)


def test_empty_periods_have_no_charts(staff, now):
    make_execution(state=TaskState.SUCCESS, duration=1.0, created_at=now - timedelta(days=9))
    html = client_for(staff).get(module_url()).content.decode()
    assert '<svg class="chart' not in html and html.count('class="empty"') >= 2


def test_module_page_query_count_is_pinned(ana, staff, django_assert_num_queries):
    make_history([ana, staff, make_user()], count=300)
    client = client_for(staff)
    # user (the session comes from the cache) + module exists + both windows (one
    # aggregate; SQLite then reads the durations) + running now + outcomes per hour +
    # durations per day + recent failures + the module's launchable templates. It was 14.
    with django_assert_num_queries(8 if percentiles_in_sql() else 9):
        response = client.get(module_url())
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<g class="bar"') == 24 and '<g class="day"' in html
