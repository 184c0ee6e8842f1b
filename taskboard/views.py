"""The dashboard at /tasks/: pages and the fragments HTMX refreshes in place."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HTMX_STOP_POLLING, trigger_client_event
from django_htmx.middleware import HtmxDetails
from django_tables2 import LazyPaginator, RequestConfig

from taskboard.models import TaskExecution, TaskState
from taskboard.selectors import (
    execution_children,
    execution_get_for,
    execution_list_for,
    module_names,
)
from taskboard.services.executions import execution_can_control, execution_cancel
from taskboard.tables import TaskExecutionTable

PER_PAGE = 25
CHANGED_EVENT = "taskboard:changed"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _filters(request: HttpRequest) -> dict[str, str]:
    wanted = ("module", "state", "owner", "q")
    # NUL never reaches a query (PostgreSQL rejects it in text); long input is cut.
    values = {name: request.GET.get(name, "").replace("\x00", "").strip()[:100] for name in wanted}
    if values["state"] not in TaskState.values:
        values["state"] = ""
    return values


def _task_table(request: HttpRequest) -> TaskExecutionTable:
    filters = _filters(request)
    rows = execution_list_for(viewer=request.user, **filters)
    table = TaskExecutionTable(
        rows,
        page_url=reverse("taskboard:dashboard"),
        fragment_url=reverse("taskboard:list"),
    )
    # LazyPaginator: pages without a COUNT(*) over the whole table.
    RequestConfig(
        request, paginate={"paginator_class": LazyPaginator, "per_page": PER_PAGE}
    ).configure(table)
    return table


def _list_context(request: HttpRequest) -> dict[str, Any]:
    return {
        "table": _task_table(request),
        "filters": _filters(request),
        "query": request.GET.urlencode(),
        "states": TaskState.choices,
        "modules": module_names(),
    }


@login_required
@require_GET
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    # An htmx request to the page (a filter form, a sort link) gets the list fragment alone.
    template = "taskboard/fragments/task-list.html" if request.htmx else "taskboard/dashboard.html"
    return render(request, template, _list_context(request))


@login_required
@require_GET
def list_fragment(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "taskboard/fragments/task-list.html", _list_context(request))


def _execution_or_404(request: HttpRequest, task_id: str) -> TaskExecution:
    execution = execution_get_for(viewer=request.user, task_id=task_id)
    if execution is None:
        raise Http404(_("No such task."))
    return execution


@login_required
@require_GET
def detail(request: HtmxHttpRequest, task_id: str) -> HttpResponse:
    execution = _execution_or_404(request, task_id)
    context = {
        "execution": execution,
        "children": execution_children(execution=execution)[:50],
        "can_control": execution_can_control(execution=execution, user=request.user),
    }
    return render(request, "taskboard/detail.html", context)


@login_required
@require_GET
def progress_fragment(request: HtmxHttpRequest, task_id: str) -> HttpResponse:
    execution = _execution_or_404(request, task_id)
    response = render(request, "taskboard/fragments/progress.html", {"execution": execution})
    if execution.is_terminal:
        response.status_code = HTMX_STOP_POLLING  # 286: htmx stops polling by itself
    return response


@login_required
@require_POST
def cancel(request: HtmxHttpRequest, task_id: str) -> HttpResponse:
    execution = _execution_or_404(request, task_id)
    terminate = request.POST.get("terminate") == "1"
    if not execution_can_control(execution=execution, user=request.user) or (
        terminate and not request.user.is_staff
    ):
        return HttpResponse(_("You may not cancel this task."), status=403)
    if not execution_cancel(execution=execution, by=request.user, terminate=terminate):
        return HttpResponse(_("This task has already finished."), status=409)
    response = render(request, "taskboard/fragments/progress.html", {"execution": execution})
    # Every panel listening refreshes now, not at its next poll.
    return trigger_client_event(response, CHANGED_EVENT)
