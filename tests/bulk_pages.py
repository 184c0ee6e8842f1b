"""The bulk pages as a client sees them: the confirmation's counts and form, the result's
counts (tests/services/test_bulk.py and test_bulk_all.py)."""

from __future__ import annotations

import html
import re
from typing import Any

from django.test import Client

CONFIRM = "/tasks/bulk/"
RUN = "/tasks/bulk/run/"
HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


def confirmation_page(
    client: Client, **params: Any
) -> tuple[dict[str, int], list[tuple[str, str]], str]:
    """The confirmation's counts, the fields its form posts, and the page."""
    response = client.get(CONFIRM, params)
    assert response.status_code == 200, response.content
    page = response.content.decode()
    counts = re.search(r'data-total="(\d+)" data-affected="(\d+)"', page)
    assert counts
    fields = [
        (name, html.unescape(value))
        for name, value in HIDDEN.findall(page)
        if name != "csrfmiddlewaretoken"
    ]
    return {"total": int(counts.group(1)), "affected": int(counts.group(2))}, fields, page


def confirmation(client: Client, **params: Any) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The confirmation's counts and the fields its form posts."""
    counts, fields, _page = confirmation_page(client, **params)
    return counts, fields


def run(client: Client, fields: list[tuple[str, str]]) -> dict[str, int]:
    """Post the confirmation's form; the result page's counts."""
    data: dict[str, list[str]] = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    response = client.post(RUN, data)
    assert response.status_code == 200, response.content
    found = re.search(
        r'data-done="(\d+)" data-skipped="(\d+)" data-unsent="(\d+)"', response.content.decode()
    )
    assert found
    return dict(zip(("done", "skipped", "unsent"), map(int, found.groups()), strict=True))
