"""The dashboard at /tasks/: the list, stats and workers fragments HTMX refreshes in place,
and the per-module stats page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from taskboard.models import TaskState
from taskboard.permissions import is_operator
from taskboard.selectors.stats import (
    module_duration_series,
    module_exists,
    module_names,
    module_recent_failures,
    module_stats,
)
from taskboard.services.reconcile import reconcile_from_web
from taskboard.services.workers import WorkersSnapshot, snapshot_for, workers_snapshot
from taskboard.tables import list_filters, task_table
from taskboard.views.charts import line_chart
from taskboard.views.htmx import HtmxHttpRequest
from taskboard.views.panels import stats_context


def _list_context(request: HttpRequest) -> dict[str, Any]:
    return {
        "table": task_table(request),
        "filters": list_filters(request),
        "query": request.GET.urlencode(),
        "states": TaskState.choices,
        "modules": module_names(),
    }


@login_required
@require_GET
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    # An htmx request to the page (a filter form, a sort link) gets the list fragment alone.
    if request.htmx:
        return _polled(
            render(request, "taskboard/fragments/task-list.html", _list_context(request))
        )
    # Every panel is server-rendered on the first load; htmx only refreshes them.
    # ...but the workers panel, which may wait on Flower or a broadcast: it loads by itself.
    context = {**_list_context(request), **stats_context(request)}
    return render(request, "taskboard/dashboard.html", context)


def _polled(response: HttpResponse) -> HttpResponse:
    """A dashboard poll also keeps the record true: at most once per interval across every
    web process, it runs the reconciliation (its own connection; never fails the poll), so
    a deployment whose only worker died still shows its tasks LOST."""
    reconcile_from_web()
    return response


@login_required
@require_GET
def list_fragment(request: HtmxHttpRequest) -> HttpResponse:
    return _polled(render(request, "taskboard/fragments/task-list.html", _list_context(request)))


def _workers_context(request: HttpRequest) -> dict[str, Any]:
    snapshot: WorkersSnapshot = snapshot_for(workers_snapshot(), viewer=request.user)
    lengths = snapshot.queue_lengths or {}
    return {"snapshot": snapshot, "queue_lengths": sorted(lengths.items())}


@login_required
@require_GET
def workers_fragment(request: HtmxHttpRequest) -> HttpResponse:
    return _polled(render(request, "taskboard/fragments/workers.html", _workers_context(request)))


CHART_DAYS = 7


@login_required
@require_GET
def stats_fragment(request: HtmxHttpRequest) -> HttpResponse:
    context = stats_context(request, module=request.GET.get("module", ""))
    return _polled(render(request, "taskboard/fragments/stats.html", context))


def _percent(rate: float | None) -> float | None:
    return None if rate is None else rate * 100


@login_required
@require_GET
def module_page(request: HtmxHttpRequest, module: str) -> HttpResponse:
    if not is_operator(request.user):
        raise PermissionDenied(_("Only staff may see module statistics."))  # styled 403.html
    if not module_exists(module=module):
        raise Http404(_("No such module."))
    now = timezone.now()
    day = module_stats(module=module, days=1, now=now)
    week = module_stats(module=module, days=CHART_DAYS, now=now)
    series = module_duration_series(module=module, days=CHART_DAYS, now=now)
    chart = line_chart(
        # A day's point sits at its midday, so today's is not drawn before the work it sums.
        series=[(p.start + timedelta(hours=12), p.avg_duration, p.count) for p in series],
        start=now - timedelta(days=CHART_DAYS),
        end=now,
    )
    windows: list[dict[str, Any]] = [
        {"label": _("Last 24 hours"), "stats": day, "success_percent": _percent(day.success_rate)},
        {
            "label": _("Last 7 days"),
            "stats": week,
            "success_percent": _percent(week.success_rate),
        },
    ]
    state_rows = [
        (value, label, [day.counts.get(value, 0), week.counts.get(value, 0)])
        for value, label in TaskState.choices
    ]
    context = {
        "module": module,
        "windows": windows,
        "state_rows": state_rows,
        "running": week.running,
        "failures": module_recent_failures(module=module),
        "chart": chart,
        "chart_days": CHART_DAYS,
    }
    return render(request, "taskboard/module.html", context)
