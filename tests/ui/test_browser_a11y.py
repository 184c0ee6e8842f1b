"""Every page (tests/ui/pages.py) in a real Chromium, at 1280×800 and 390×844, light and
dark: axe-core finds no serious or critical violation, the phone width never scrolls
sideways, dark mode renders dark; a screenshot of each in artifacts/screenshots/.

axe-core is vendored as a test asset (tests/ui/assets/axe-core/, MPL-2.0), never served by
the app. The Content-Security-Policy stays on: axe comes in as an init script (the DevTools
protocol's, which no page policy applies to), so the page checked is the page users get.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from tests.browser import ARTIFACTS, CHROMIUM_ARGS, chromium_path, watch_console
from tests.ui.pages import PAGES, Page, session_cookie, settle, site_data

AXE = Path(__file__).parent / "assets" / "axe-core" / "axe.min.js"
SCREENSHOTS = ARTIFACTS / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# (screenshot suffix, browser context options)
MODES: list[tuple[str, dict[str, Any]]] = [
    ("1280", {"viewport": DESKTOP, "color_scheme": "light"}),
    # Not is_mobile: a mobile viewport zooms out to fit a too-wide page, and innerWidth grows
    # with it, hiding the very overflow checked for.
    ("390", {"viewport": PHONE, "color_scheme": "light"}),
    ("dark-1280", {"viewport": DESKTOP, "color_scheme": "dark"}),
]

RUN_AXE = """async () => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 6).map((n) => (
        {target: n.target.join(" "), summary: n.failureSummary})),
      more: Math.max(0, v.nodes.length - 6),
    }));
}"""

# Relative luminance (WCAG) of the body's computed background and text colour.
COLOURS = """() => {
  const lum = (css) => {
    const [r, g, b] = css.match(/[\\d.]+/g).slice(0, 3).map(Number).map((c) => {
      c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const style = getComputedStyle(document.body);
  return {background: lum(style.backgroundColor), text: lum(style.color),
          css: [style.backgroundColor, style.color]};
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the whole module (a few seconds per page, not per launch)."""
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(
                executable_path=chromium_path(), args=CHROMIUM_ARGS
            )
            yield launched
            launched.close()
    finally:
        connections.close_all()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def readable(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"  [{violation['impact']}] {violation['id']}: {violation['help']}")
        for node in violation["nodes"]:
            summary = " ".join(node["summary"].split())
            lines.append(f"      {node['target']}\n        {summary}")
        if violation["more"]:
            lines.append(f"      … and {violation['more']} more")
    return "\n".join(lines)


def visit(browser: Any, base: str, page_spec: Page, data: dict[str, str], **options: Any) -> Any:
    context = browser.new_context(locale="es-ES", **options)
    context.set_default_timeout(15_000)
    context.add_init_script(path=str(AXE))
    context.add_cookies(session_cookie(page_spec.user, base))
    page = context.new_page()
    problems = watch_console(page)
    response = page.goto(page_spec.url(base, data))
    assert response is not None and response.status == page_spec.status, (
        f"{page_spec.name}: {response and response.status}, expected {page_spec.status}"
    )
    settle(page)
    page.problems = problems
    return page


def unexpected(problems: list[str], page_spec: Page) -> list[str]:
    """Console problems, but the failed load the browser logs for a page's own 403/404."""
    if page_spec.status == 200:
        return problems
    own = f"status of {page_spec.status} "
    return [problem for problem in problems if own not in problem]


@pytest.mark.parametrize("page_spec", PAGES, ids=[spec.name for spec in PAGES])
def test_page_is_accessible_on_desktop_phone_and_dark(browser, live_server, page_spec):
    data = site_data()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    failures = []
    for mode, options in MODES:
        page = visit(browser, live_server.url, page_spec, data, **options)
        try:
            page.screenshot(path=str(SCREENSHOTS / f"{page_spec.name}-{mode}.png"), full_page=True)
            violations = page.evaluate(RUN_AXE)
            if violations:
                failures.append(f"{mode}: axe-core, serious or critical:\n{readable(violations)}")
            if mode == "390":
                widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
                if widths[0] > widths[1]:
                    wide = page.evaluate(WIDEST)
                    failures.append(
                        f"{mode}: scrolls sideways: scrollWidth {widths[0]} > {widths[1]};"
                        f" widest elements: {wide}"
                    )
            if mode.startswith("dark"):
                colours = page.evaluate(COLOURS)
                if not (colours["background"] < 0.05 and colours["text"] > 0.5):
                    failures.append(f"{mode}: not dark: body background/text {colours['css']}")
            if unexpected(page.problems, page_spec):
                failures.append(f"{mode}: console: {unexpected(page.problems, page_spec)}")
        finally:
            page.context.close()
    assert not failures, f"{page_spec.name} ({page_spec.path}):\n" + "\n".join(failures)


# What sticks out past the phone's width, to name in the failure.
WIDEST = """() => {
  const width = window.innerWidth;
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest("details:not([open])") && !el.closest("summary")) continue;  // not drawn
    const rect = el.getBoundingClientRect();
    if (rect.right > width + 1 && getComputedStyle(el).position !== "fixed") {
      const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
        (el.classList.length ? "." + [...el.classList].join(".") : "");
      const text = (el.textContent || "").replace(/\\s+/g, " ").trim().slice(0, 24);
      out.push(name + (text ? ' "' + text + '"' : "") + " (right " + Math.round(rect.right) + ")");
    }
  }
  return out.slice(0, 8);
}"""


def test_bell_list_fits_the_phone(browser, live_server):
    """The bell's list, open at 390 px: on the screen, whole, nothing scrolls sideways."""
    data = site_data()
    spec = Page("bell-open", "/tasks/notifications/", "ana")
    page = visit(browser, live_server.url, spec, data, viewport=PHONE, color_scheme="light")
    try:
        page.click("#notification-bell summary")
        menu = page.locator("#notification-bell .bell-menu")
        menu.wait_for()
        box = menu.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
        inside = page.evaluate(WIDEST)
        assert inside == [], inside
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "bell-open-390.png"))
        assert page.evaluate(RUN_AXE) == []
    finally:
        page.context.close()
