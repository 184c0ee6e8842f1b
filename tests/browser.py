"""Real Chromium for the browser tests (Playwright driving the system's browser).

Install the browser with `apt-get install chromium` (Debian/Ubuntu); the tests fail, never
skip, without it. The `page` fixture lives in conftest.py.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from tests.processes import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM_HELP = (
    "The browser tests need Chromium at /usr/bin/chromium (or `chromium` on PATH). "
    "Install it with `apt-get install chromium` (Debian/Ubuntu); Playwright's own browser "
    "download is not used."
)
ARTIFACTS = ROOT / "artifacts"
PASSWORD = "browser-pass-123"


def chromium_path() -> str:
    if CHROMIUM.exists():
        return str(CHROMIUM)
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(CHROMIUM_HELP, pytrace=False)
    return found


def browser_page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The `page` fixture's body (conftest.py)."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # plain blocking calls all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        # The users' language: the Spanish UI (the test reads CSS classes, not labels).
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="es-ES")
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
            # With Playwright's loop running, Django keeps the test's own database
            # connection apart from the thread's usual one: close it, or it outlives the
            # test and blocks dropping the test database.
            connections.close_all()


def watch_console(page: Any) -> list[str]:
    problems: list[str] = []

    def on_console(message: Any) -> None:
        if message.type not in ("error", "assert"):
            return
        where = message.location.get("url", "")
        problems.append(f"console.{message.type}: {message.text} ({where})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    return problems


def request_times(page: Any, url_part: str) -> list[float]:
    """When (time.monotonic()) the page requested a URL containing url_part, kept up to
    date as it runs: how a test sees that a fragment polls, or has stopped polling."""
    times: list[float] = []

    def on_request(request: Any) -> None:
        if url_part in request.url:
            times.append(time.monotonic())

    page.on("request", on_request)
    return times


def log_in(page: Any, base_url: str, username: str, next_path: str) -> None:
    page.goto(f"{base_url}/accounts/login/?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"{base_url}{next_path}")
