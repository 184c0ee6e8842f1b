"""Context of the panels that both pages and template tags render."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from taskboard.permissions import is_operator
from taskboard.selectors.stats import HEADLINE_HOURS, headline_counts, module_overview

STATS_DAYS = 1  # the stats panel covers the last 24 hours


def stats_context(request: HttpRequest, module: str = "") -> dict[str, Any]:
    """The stats panel's context: staff see every module, others their own tasks only;
    with `module`, that module alone (the embedded panel)."""
    user = request.user
    mine_only = not is_operator(user)
    module = module.replace("\x00", "")[:64]
    return {
        "stats_rows": module_overview(
            days=STATS_DAYS, user=user if mine_only else None, module=module or None
        ),
        "stats_mine_only": mine_only,
        "stats_module": module,
    }


def headline_context(request: HttpRequest) -> dict[str, Any]:
    """The dashboard's headline counters, scoped as the stats panel is: staff count every
    task, others their own."""
    user = request.user
    mine_only = not is_operator(user)
    return {
        "headline": headline_counts(user=user if mine_only else None),
        "headline_mine_only": mine_only,
        "headline_hours": HEADLINE_HOURS,
    }
