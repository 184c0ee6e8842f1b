"""The task list in a real browser: its state in the address bar (reload, Back), polls that
keep focus and scroll (morphing swaps), and one card per task on a phone.

Real Chromium (Playwright) against the live server; see tests/browser.py.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from taskboard.models import TaskExecution, TaskState
from taskboard.tracking.stamps import stamp_bump
from tests.browser import ARTIFACTS, PASSWORD, log_in, request_times, watch_console
from tests.factories import make_execution

SETTLED = """() => {
  window.__settled = 0;
  document.body.addEventListener("htmx:afterSettle", (event) => {
    if (event.detail.target && event.detail.target.id === "task-list") window.__settled += 1;
  });
}"""


def count_settles(page: Any) -> None:
    """From now on window.__settled counts the list's swaps (polls or clicks)."""
    page.evaluate(SETTLED)


def wait_for_settles(page: Any, count: int, timeout: float = 15_000) -> None:
    page.wait_for_function(f"() => window.__settled >= {count}", timeout=timeout)


FITS = """el => ({right: el.getBoundingClientRect().right, scroll: el.scrollWidth,
                 client: el.clientWidth})"""


WIDER = """() => [...document.querySelectorAll("body *")]
  .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1)
  .map(el => el.tagName + "." + el.className + "#" + el.id).slice(0, 10)"""


def rows_of(page: Any) -> set[str]:
    ids = page.eval_on_selector_all("#task-list tr.task", "rows => rows.map(r => r.id)")
    return {row.removeprefix("task-") for row in ids}


def test_filtered_url_survives_reload_and_back(live_server, django_user_model, page):
    django_user_model.objects.create_user("nora", password=PASSWORD)
    nora = django_user_model.objects.get(username="nora")
    payroll = make_execution(user=nora, module="nomina", state=TaskState.SUCCESS)
    failed = make_execution(user=nora, module="contabilidad", state=TaskState.FAILURE)
    lost = make_execution(user=nora, module="contabilidad", state=TaskState.LOST)
    done = make_execution(user=nora, module="contabilidad", state=TaskState.SUCCESS)
    problems = watch_console(page)
    base = live_server.url
    log_in(page, base, "nora", "/tasks/")
    assert rows_of(page) == {e.task_id for e in (payroll, failed, lost, done)}

    page.select_option("#task-filters select[name=module]", "contabilidad")
    page.wait_for_url(f"{base}/tasks/?module=contabilidad")
    page.wait_for_function(f"() => !document.getElementById('task-{payroll.task_id}')")
    page.select_option("#task-filters select[name=state]", "failed")
    page.wait_for_url(f"{base}/tasks/?module=contabilidad&state=failed")
    page.wait_for_function(f"() => !document.getElementById('task-{done.task_id}')")
    assert rows_of(page) == {failed.task_id, lost.task_id}
    # The morphed list polls its new query (and no other).
    polled: list[str] = []

    def on_request(request: Any) -> None:
        if "/fragments/list/" in request.url:
            polled.append(request.url)

    page.on("request", on_request)
    page.wait_for_event("request", lambda r: "/fragments/list/" in r.url, timeout=12_000)
    assert polled == [f"{base}/tasks/fragments/list/?module=contabilidad&state=failed"], polled
    # The sort link keeps the filters and adds itself to the address.
    page.click("#sort-label")
    page.wait_for_url(f"{base}/tasks/?module=contabilidad&state=failed&sort=label")
    page.locator("th.col-label[aria-sort=ascending]").wait_for()

    page.reload()
    assert page.url == f"{base}/tasks/?module=contabilidad&state=failed&sort=label"
    assert page.input_value("#task-filters select[name=module]") == "contabilidad"
    assert page.input_value("#task-filters select[name=state]") == "failed"
    assert rows_of(page) == {failed.task_id, lost.task_id}
    assert page.locator("th.col-label[aria-sort=ascending] .sort-arrow").inner_text() == "▲"
    assert page.locator(".active-filters .clear-filters").count() == 1

    # Back: the list before the sort, then before the state filter, each as the server has
    # it now (htmx keeps no snapshot: the page loads again), and still polling.
    with page.expect_event("load"):
        page.go_back()
    assert page.url == f"{base}/tasks/?module=contabilidad&state=failed"
    assert page.locator("th[aria-sort]").count() == 0
    with page.expect_event("load"):
        page.go_back()
    assert page.url == f"{base}/tasks/?module=contabilidad"
    page.locator(f"#task-{done.task_id}").wait_for()
    assert page.input_value("#task-filters select[name=state]") == ""
    assert rows_of(page) == {failed.task_id, lost.task_id, done.task_id}
    assert page.locator("#task-list").get_attribute("hx-get") == (
        "/tasks/fragments/list/?module=contabilidad"
    )
    polls = request_times(page, "/fragments/list/?module=contabilidad")
    later = make_execution(user=nora, module="contabilidad", state=TaskState.PROGRESS)
    make_execution(user=nora, module="nomina", state=TaskState.PROGRESS, display_name="Other")
    page.locator(f"#task-{later.task_id}").wait_for(timeout=12_000)
    assert polls, "the restored list does not poll its own query"
    assert len(rows_of(page)) == 4

    # Clear filters: the whole list again, the form emptied.
    with page.expect_event("load"):
        page.go_forward()
    assert page.url == f"{base}/tasks/?module=contabilidad&state=failed"
    page.click(".active-filters .clear-filters")
    page.wait_for_url(f"{base}/tasks/")
    assert page.input_value("#task-filters select[name=module]") == ""
    assert len(rows_of(page)) == 6
    assert problems == []


def test_search_replaces_the_address_and_an_empty_result_names_the_filter(
    live_server, django_user_model, page
):
    nora = django_user_model.objects.create_user("nora", password=PASSWORD)
    make_execution(user=nora, display_name="Cierre contable")
    problems = watch_console(page)
    base = live_server.url
    log_in(page, base, "nora", "/tasks/")
    length = page.evaluate("history.length")
    page.fill("#task-filters input[name=q]", "zzz")
    page.wait_for_url(f"{base}/tasks/?q=zzz")
    empty = page.locator("#task-list td.empty")
    empty.wait_for()
    assert empty.locator(".filter-label").count() == 1
    assert "zzz" in empty.inner_text() and empty.locator(".clear-filters").count() == 1
    # Keystrokes replace the address; leaving the field does not add an entry either.
    page.keyboard.press("Tab")
    page.wait_for_timeout(600)
    assert page.evaluate("history.length") == length
    assert problems == []


def test_focus_and_scroll_survive_two_polls(live_server, django_user_model, page):
    nora = django_user_model.objects.create_user("nora", password=PASSWORD)
    now = timezone.now()
    for n in range(24):
        make_execution(
            user=nora,
            state=TaskState.SUCCESS,
            display_name=f"Hecha {n}",
            created_at=now - timedelta(minutes=n + 1),
        )
    running = make_execution(
        user=nora,
        state=TaskState.PROGRESS,
        progress=10,
        display_name="Larga",
        created_at=now - timedelta(minutes=30),
        started_at=now - timedelta(minutes=30),
    )
    problems = watch_console(page)
    base = live_server.url
    page.set_viewport_size({"width": 1280, "height": 500})
    log_in(page, base, "nora", "/tasks/")
    cancel = page.locator(f"#task-{running.task_id} button.cancel")
    cancel.focus()
    page.evaluate("window.scrollBy(0, 40)")
    scroll = page.evaluate("window.scrollY")
    assert scroll > 0
    page.evaluate("document.activeElement.__marker = 'kept'")
    count_settles(page)
    TaskExecution.objects.filter(pk=running.pk).update(progress=40)
    stamp_bump()  # as the worker's recorder does after each write
    wait_for_settles(page, 1)
    TaskExecution.objects.filter(pk=running.pk).update(progress=70)
    stamp_bump()
    wait_for_settles(page, 2)
    bar = page.locator(f"#task-{running.task_id} [role=progressbar]")
    assert bar.get_attribute("aria-valuenow") == "70"  # the polls did change the row
    assert page.evaluate("document.activeElement.__marker") == "kept"
    assert page.evaluate("document.activeElement.classList.contains('cancel')")
    assert page.evaluate("window.scrollY") == scroll

    # The same for a sort link.
    page.focus("#sort-module")
    page.evaluate("document.activeElement.__marker = 'sort'")
    stamp_bump()  # two more changes: an unchanged record's poll swaps nothing (204)
    wait_for_settles(page, 3)
    stamp_bump()
    wait_for_settles(page, 4)
    assert page.evaluate("document.activeElement.__marker") == "sort"
    assert page.evaluate("document.activeElement.id") == "sort-module"
    assert problems == []


def test_phone_shows_one_card_per_task_without_overflow(live_server, django_user_model, page):
    boss = django_user_model.objects.create_user("jefa", password=PASSWORD, is_staff=True)
    long_name = "Consolidación trimestral de nóminas con un nombre muy largo " * 2
    rows = [
        make_execution(
            user=boss,
            state=TaskState.PROGRESS,
            progress=45,
            display_name=long_name,
            progress_message="Empleado 45 de 100",
            started_at=timezone.now(),
        ),
        make_execution(user=boss, state=TaskState.FAILURE, duration=12.5),
        make_execution(user=boss, state=TaskState.PENDING, module="contabilidad"),
    ]
    problems = watch_console(page)
    page.set_viewport_size({"width": 390, "height": 844})
    base = live_server.url
    log_in(page, base, "jefa", "/tasks/")
    # The list, its filter form and bulk bar fit the screen; nothing in them scrolls sideways.
    for part in ("#task-filters", "#task-list", "#task-list table.tasks", ".bulk-bar"):
        fits = page.eval_on_selector(part, FITS)
        assert fits["right"] <= 390 and fits["scroll"] <= fits["client"], (part, fits)
    # ...and so does the whole page, its stats and workers panels (their tables scroll in
    # their own box) included.
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], (width, page.evaluate(WIDER))
    for execution in rows:
        card = page.locator(f"#task-{execution.task_id}")
        assert card.evaluate("el => getComputedStyle(el).display") == "grid"
        box = card.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.locator(f"#task-{rows[0].task_id} button.cancel").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "list-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.screenshot(path=str(ARTIFACTS / "list-desktop.png"), full_page=True)
    assert problems == []
