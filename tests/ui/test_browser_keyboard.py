"""The dashboard by keyboard alone, in a real Chromium: Tab reaches the skip link, the
filters, a task's link, the bell and a Cancel button, each with a visible focus ring; the
bell opens with Enter or Space, stays open through a refresh and closes with Escape; Cancel
works from the keyboard.
"""

from __future__ import annotations

from typing import Any

from taskboard.models import TaskExecution
from tests.browser import watch_console
from tests.processes import wait_until
from tests.ui.pages import ADMIN, session_cookie, settle, site_data

MAX_TABS = 80

FOCUSED = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const form = el.closest("form");
  return {
    name: el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
      (typeof el.className === "string" && el.className
        ? "." + el.className.split(" ").join(".") : ""),
    href: el.getAttribute("href"),
    hxPost: el.getAttribute("hx-post"),
    filters: !!(form && form.querySelector("[name=q]")),
    bellSummary: el.matches("#notification-bell > summary"),
    skip: el.matches(".skip-link"),
    visible: (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0) ||
      style.boxShadow !== "none",
  };
}"""


def tab_through(page: Any) -> list[dict[str, Any]]:
    """What the focus lands on at each Tab, from the top of the page, until it wraps."""
    stops: list[dict[str, Any]] = []
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused["name"] == "body" or (stops and focused == stops[0]):
            break
        stops.append(focused)
    return stops


def first(stops: list[dict[str, Any]], what: str, **match: Any) -> dict[str, Any]:
    for stop in stops:
        if all(stop[key] == value for key, value in match.items()):
            return stop
    raise AssertionError(f"Tab never reached {what}; it went: {[s['name'] for s in stops]}")


def test_dashboard_by_keyboard(live_server, page):
    data = site_data()
    base = live_server.url
    problems = watch_console(page)
    page.on("dialog", lambda dialog: dialog.accept())
    page.context.add_cookies(session_cookie(ADMIN, base))
    page.goto(f"{base}/tasks/")
    settle(page)

    stops = tab_through(page)
    assert stops[0]["skip"], f"the first Tab stop is not 'Skip to content': {stops[0]}"
    reached = [
        first(stops, "the filter form", filters=True),
        first(stops, "the running task's link", href=f"/tasks/{data['running']}/"),
        first(stops, "the bell", bellSummary=True),
        first(stops, "its Cancel button", hxPost=f"/tasks/{data['running']}/cancel/"),
    ]
    unseen = [stop["name"] for stop in stops if not stop["visible"]]
    assert unseen == [], f"focus without a visible outline or ring on: {unseen}"
    assert all(stop["visible"] for stop in reached)

    # The skip link moves the focus to the content.
    page.focus(".skip-link")
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "content"

    # The bell: Enter opens it, Escape closes it and the focus stays on it; Space too.
    bell = page.locator("#notification-bell")
    summary = bell.locator("summary")
    summary.focus()
    page.keyboard.press("Enter")
    assert bell.evaluate("(el) => el.open") is True
    page.keyboard.press("Tab")  # into its list
    assert bell.evaluate("(el) => el.contains(document.activeElement)")
    # A refresh while it is open (something changed) keeps it open, the focus in it.
    with page.expect_response(lambda response: "/notifications/bell/" in response.url):
        page.evaluate("() => document.body.dispatchEvent(new Event('taskboard:changed'))")
    settle(page)
    assert bell.evaluate("(el) => el.open") is True
    assert bell.evaluate("(el) => el.contains(document.activeElement)")
    page.keyboard.press("Escape")
    assert bell.evaluate("(el) => el.open") is False
    assert summary.evaluate("(el) => el === document.activeElement")
    page.keyboard.press(" ")
    assert bell.evaluate("(el) => el.open") is True
    page.keyboard.press("Escape")
    assert bell.evaluate("(el) => el.open") is False

    # Cancel from the keyboard (its confirmation accepted): the task is asked to stop.
    cancel = page.locator(f'button[hx-post="/tasks/{data["running"]}/cancel/"]').first
    cancel.focus()
    page.keyboard.press("Enter")
    wait_until(
        lambda: TaskExecution.objects.get(task_id=data["running"]).cancel_requested_at,
        timeout=10,
    )
    assert problems == []
