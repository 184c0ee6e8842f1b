"""The dashboard at /tasks/: the list, stats and workers fragments HTMX refreshes in place,
and the per-module stats page."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from taskboard.models import TaskState
from taskboard.permissions import is_operator
from taskboard.selectors.stats import (
    module_daily_durations,
    module_exists,
    module_hourly_outcomes,
    module_names,
    module_recent_failures,
    module_windows,
)
from taskboard.services.reconcile import reconcile_from_web
from taskboard.services.workers import WorkersSnapshot, snapshot_for, workers_snapshot
from taskboard.services.workers.sources import NOT_READY
from taskboard.tables import SINCE_CHOICES, STATE_GROUP_CHOICES, list_filters, task_table
from taskboard.tracking.stamps import HEADER
from taskboard.views.charts import durations_chart, outcomes_chart
from taskboard.views.htmx import HtmxHttpRequest
from taskboard.views.panels import headline_context, stats_context
from taskboard.views.polls import (
    not_changed,
    poll_stamp,
    viewer_known,
    viewer_remember,
    viewer_stamp,
)


def _list_context(request: HtmxHttpRequest, *, page: bool, push_url: bool) -> dict[str, Any]:
    """The list fragment's context; page: for the whole dashboard (its filter form too);
    push_url: the list's links put their query in the address bar."""
    context: dict[str, Any] = {
        "table": task_table(request, push_url=push_url),
        "query": request.GET.urlencode(),
    }
    if page:
        context |= {
            "filters": list_filters(request),
            "states": TaskState.choices,
            "state_groups": STATE_GROUP_CHOICES,
            "since_choices": SINCE_CHOICES,
            "modules": module_names(),
        }
    return context


def _shown_on_dashboard(request: HtmxHttpRequest) -> bool:
    """Whether an htmx request for the list comes from the dashboard itself (its links then
    put their query in the address bar), not from a list embedded in another page."""
    current = request.htmx.current_url_abs_path if request.htmx else None
    return current is not None and urlsplit(current).path == reverse("taskboard:dashboard")


@login_required
@require_GET
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    # An htmx request to the page (the filter form, the search) gets the list fragment
    # alone, its query pushed to the address bar; but a history restore (Back to a page htmx
    # has not kept) gets the whole page.
    if request.htmx and not request.htmx.history_restore_request:
        context = _list_context(request, page=False, push_url=True)
        response = render(request, "taskboard/fragments/task-list.html", context)
    else:
        # Every panel is server-rendered on the first load; htmx only refreshes them.
        # ...but the workers panel, which may wait on Flower or a broadcast: it loads by itself.
        stamp = viewer_stamp(request)
        context = {
            **_list_context(request, page=True, push_url=True),
            **stats_context(request),
            **headline_context(request),
            "stamp": stamp,
            "pulse_stamp": f"{stamp}.{UNKNOWN_WORKERS}" if stamp else None,
        }
        response = render(request, "taskboard/dashboard.html", context)
    # One URL, two answers: a cache (the browser's own, for Back) must tell them apart.
    patch_vary_headers(response, ["HX-Request"])
    return _polled(response) if request.htmx else response


def _polled(response: HttpResponse) -> HttpResponse:
    """A dashboard poll also keeps the record true: at most once per interval across every
    web process, it runs the reconciliation (its own connection; never fails the poll), so
    a deployment whose only worker died still shows its tasks LOST."""
    reconcile_from_web()
    return response


def _stamped_poll(
    request: HtmxHttpRequest,
    element_id: str,
    template: str,
    context: Callable[[], dict[str, Any]],
) -> HttpResponse:
    """A polled panel (element_id): 204 while the record is unchanged since what it shows
    (views/polls.py), without building its context; else rendered with the current stamp."""
    stamp, unchanged = poll_stamp(request, element_id)
    if unchanged:
        return _polled(not_changed())
    return _polled(render(request, template, {**context(), "stamp": stamp}))


@login_required
@require_GET
def list_fragment(request: HtmxHttpRequest) -> HttpResponse:
    return _stamped_poll(
        request,
        "task-list",
        "taskboard/fragments/task-list.html",
        lambda: _list_context(request, page=False, push_url=_shown_on_dashboard(request)),
    )


def _workers_context(request: HttpRequest) -> dict[str, Any]:
    snapshot: WorkersSnapshot = snapshot_for(workers_snapshot(), viewer=request.user)
    lengths = snapshot.queue_lengths or {}
    return {"snapshot": snapshot, "queue_lengths": sorted(lengths.items())}


@login_required
@require_GET
def workers_fragment(request: HtmxHttpRequest) -> HttpResponse:
    return _polled(render(request, "taskboard/fragments/workers.html", _workers_context(request)))


CHART_DAYS = 7  # the module page's durations chart: a point per day
CHART_HOURS = 24  # its outcomes chart: a bar per hour


@login_required
@require_GET
def stats_fragment(request: HtmxHttpRequest) -> HttpResponse:
    return _stamped_poll(
        request,
        "stats-panel",
        "taskboard/fragments/stats.html",
        lambda: stats_context(request, module=request.GET.get("module", "")),
    )


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
    day, week = module_windows(module=module, days=(1, CHART_DAYS), now=now)
    hours = module_hourly_outcomes(module=module, hours=CHART_HOURS, now=now)
    days = module_daily_durations(module=module, days=CHART_DAYS, now=now)
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
        "hours": hours,
        "outcomes_chart": outcomes_chart(hours),
        "days": days,
        "durations_chart": durations_chart(days),
        "chart_hours": CHART_HOURS,
        "chart_days": CHART_DAYS,
    }
    return render(request, "taskboard/module.html", context)


UNKNOWN_WORKERS = "?"  # the page's first render: the workers panel loads by itself


def _workers_digest() -> str:
    """What the workers panel shows, as a short value: workers, their tasks, queue lengths
    (not the counters that move all the time); UNKNOWN_WORKERS while another viewer's fetch
    is still looking them up (that is no change: counting it one made every dashboard
    refresh, and so fetch again, whenever fetches were slow). Of the whole snapshot, not of
    what this viewer may see of it (snapshot_for), which would cost a query: a change in
    someone else's tasks refreshes a viewer's panel too, which shows how many others run."""
    snapshot = workers_snapshot()
    if any(failure.reason == NOT_READY for failure in snapshot.fallbacks):
        return UNKNOWN_WORKERS
    workers = [
        (w.name, w.online, w.concurrency, w.queues, w.others_active, [t.task_id for t in w.active])
        for w in snapshot.workers
    ]
    seen = repr((snapshot.source, workers, sorted((snapshot.queue_lengths or {}).items())))
    return hashlib.blake2b(seen.encode(), digest_size=6).hexdigest()


@dataclass(frozen=True)
class PulseState:
    record: str | None  # the record's change stamp now (None: the cache cannot say)
    workers: str  # the workers digest now
    sent_record: str  # what the page holds
    sent_workers: str

    @property
    def unchanged(self) -> bool:
        return (
            self.record is not None
            and self.sent_record == self.record
            and self.sent_workers == self.workers
        )


def _pulse_state(request: HtmxHttpRequest) -> PulseState:
    sent_record, _, sent_workers = request.headers.get(HEADER, "").partition(".")
    workers = _workers_digest()
    if workers == UNKNOWN_WORKERS:  # unknown for now: what the page shows stands
        workers = sent_workers or UNKNOWN_WORKERS
    return PulseState(viewer_stamp(request), workers, sent_record, sent_workers)


@require_GET
def pulse(request: HtmxHttpRequest) -> HttpResponse:
    """The dashboard's one poll (every 5 s). Its stamp is the record's change stamp and a
    digest of the workers panel; while the one it sent back is current: 204. Else the pulse
    again with the new stamp, and `HX-Trigger: taskboard:changed`, on which every panel
    refreshes (taskboard.js keeps the panels of a page with a pulse from polling by
    themselves). An idle open dashboard so costs one small request per 5 s, not one per
    panel, and that request no query: a viewer known from an earlier pulse (viewer_known,
    views/polls.py) is answered 204 without loading the user. When the cache cannot say,
    every pulse refreshes the panels, as polls did."""
    state = _pulse_state(request) if viewer_known(request) else None
    if state is not None and state.unchanged:
        return _polled(not_changed())
    return _pulse_checked(request, state)


@login_required
def _pulse_checked(request: HtmxHttpRequest, state: PulseState | None) -> HttpResponse:
    """The pulse of a viewer whose user is loaded (and so remembered for the next ones);
    state: as the fast path read it, if it did (an anonymous request reads nothing)."""
    viewer_remember(request)
    state = state or _pulse_state(request)
    if state.unchanged:
        return _polled(not_changed())
    changed = (
        state.record is None
        or state.sent_record != state.record
        or state.sent_workers not in (state.workers, UNKNOWN_WORKERS)
    )
    # Not changed, yet not the stamp sent: the workers digest became known (a new stamp,
    # nothing to refresh).
    stamp = None if state.record is None else f"{state.record}.{state.workers}"
    response = render(request, "taskboard/fragments/pulse.html", {"pulse_stamp": stamp})
    if changed and state.sent_record:
        response["HX-Trigger"] = "taskboard:changed"
    return _polled(response)


@login_required
@require_GET
def headline_fragment(request: HtmxHttpRequest) -> HttpResponse:
    return _stamped_poll(
        request, "headline", "taskboard/fragments/headline.html", lambda: headline_context(request)
    )
