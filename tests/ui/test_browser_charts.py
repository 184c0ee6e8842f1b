"""The module page's charts and the dashboard's headline counters in a real Chromium: the
SVG charts render and fit at 1280 px and at 390 px (no horizontal scroll, their tables
scroll inside their own box), and a counter leads to the filtered list."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from playwright.sync_api import expect

from taskboard.models import TaskState
from tests.browser import ARTIFACTS, PASSWORD, log_in, watch_console
from tests.factories import make_execution

NO_OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth"


def make_rows(owner: Any) -> None:
    now = timezone.now()
    for hours_ago in range(0, 30, 2):
        created = now - timedelta(hours=hours_ago, minutes=5)
        for duration in (0.4, 1.5, 3.0):
            make_execution(
                user=owner, state=TaskState.SUCCESS, duration=duration, created_at=created
            )
        make_execution(user=owner, state=TaskState.FAILURE, created_at=created)
    for days_ago in range(2, 6):
        make_execution(
            user=owner,
            state=TaskState.SUCCESS,
            duration=10.0 * days_ago,
            created_at=now - timedelta(days=days_ago),
        )
    make_execution(user=owner, state=TaskState.LOST, display_name="Perdida", created_at=now)
    make_execution(user=owner, state=TaskState.PROGRESS, created_at=now)


def charts_fit(page: Any, width: int) -> None:
    page.locator("svg.chart.outcomes g.bar").first.wait_for()
    assert page.locator("svg.chart.outcomes g.bar").count() == 24
    assert page.locator("svg.chart.durations g.day").count() >= 4
    for chart in page.locator(".chart-scroll").all():
        # The chart fills its box; on a phone the box scrolls, not the page.
        box, svg = chart.bounding_box(), chart.locator("svg").bounding_box()
        assert box is not None and svg is not None and svg["height"] > 100
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
        assert svg["width"] >= min(box["width"], 480) - 1, (box, svg)
        assert svg["x"] <= box["x"] + 1, (box, svg)  # on the left, where the page reads
    # Every bar and point carries its tooltip.
    assert page.evaluate(
        "[...document.querySelectorAll('svg.chart g.bar, svg.chart .point')]"
        ".every(el => el.querySelector('title') && el.querySelector('title').textContent)"
    )
    # The colours come from charts.css: a succeeded segment is not black (the default).
    fill = page.evaluate(
        "getComputedStyle(document.querySelector('svg.chart .segment.succeeded')).fill"
    )
    assert fill not in ("", "rgb(0, 0, 0)", "none"), fill
    # The table fallback opens and scrolls inside its own box, never the page.
    page.locator("#outcomes-table summary").click()
    page.locator("#outcomes-table table").wait_for()
    assert page.evaluate(NO_OVERFLOW), page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]"
    )


def test_module_charts_fit_at_desktop_and_phone_widths(live_server, django_user_model, page):
    jefa = django_user_model.objects.create_user("jefa", password=PASSWORD, is_staff=True)
    make_rows(jefa)
    problems = watch_console(page)
    ARTIFACTS.mkdir(exist_ok=True)

    log_in(page, live_server.url, "jefa", "/tasks/modules/nomina/")
    charts_fit(page, 1280)
    page.screenshot(path=str(ARTIFACTS / "module-charts-1280.png"), full_page=True)
    # Dark mode: the charts take the palette's dark panel, not a white box.
    page.emulate_media(color_scheme="dark")
    background = page.evaluate(
        "getComputedStyle(document.querySelector('svg.chart.outcomes')).backgroundColor"
    )
    panel = page.evaluate(
        "getComputedStyle(document.documentElement).getPropertyValue('--panel').trim()"
    )
    assert background == "rgb(26, 31, 38)" and panel == "#1a1f26", (background, panel)
    page.screenshot(path=str(ARTIFACTS / "module-charts-1280-dark.png"), full_page=True)
    page.emulate_media(color_scheme="light")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    charts_fit(page, 390)
    page.screenshot(path=str(ARTIFACTS / "module-charts-390.png"), full_page=True)
    page.locator("#outcomes .chart-scroll").screenshot(path=str(ARTIFACTS / "outcomes-390.png"))
    # A chart wider than the phone opens on its newest end (the right).
    newest = page.locator("svg.chart.outcomes g.bar").last.bounding_box()
    assert newest is not None and newest["x"] >= 0 and newest["x"] + newest["width"] <= 390
    assert problems == []


def test_a_headline_counter_leads_to_the_filtered_list(live_server, django_user_model, page):
    ana = django_user_model.objects.create_user("ana", password=PASSWORD)
    make_rows(ana)
    done = make_execution(user=ana, state=TaskState.SUCCESS, created_at=timezone.now())
    problems = watch_console(page)
    ARTIFACTS.mkdir(exist_ok=True)

    log_in(page, live_server.url, "ana", "/tasks/")
    lost = page.locator("#headline-lost")
    assert lost.get_attribute("data-count") == "1"
    assert page.locator("#headline-running").get_attribute("data-count") == "1"
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 844})
        headline = page.locator("#headline")
        headline.screenshot(path=str(ARTIFACTS / f"headline-{width}.png"))
        # The counters fit the screen (the list under them is laid out by list.css).
        for box in (headline.bounding_box(), page.locator("#headline .counters").bounding_box()):
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    # A poll morphs the counters in place: the focused one keeps the focus.
    lost.focus()
    make_execution(user=ana, state=TaskState.LOST, created_at=timezone.now())
    expect(lost).to_have_attribute("data-count", "2", timeout=15_000)
    # ...and keeps it through the dashboard's next beat (its pulse, views/dashboard.py).
    with page.expect_response(lambda response: "/fragments/pulse/" in response.url):
        pass
    assert page.evaluate("document.activeElement.id") == "headline-lost"
    # The counter is keyboard-reachable and leads to the lost tasks.
    page.keyboard.press("Enter")
    page.wait_for_url("**/tasks/?state=LOST*")
    page.locator("#task-list .badge.state-lost").first.wait_for()
    assert page.locator(f"#task-{done.task_id}").count() == 0
    assert page.locator("#task-list .badge.state-success").count() == 0
    assert problems == []
