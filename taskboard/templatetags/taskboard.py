"""Embeddable fragments: any SGM page shows its tasks without writing JavaScript.

    {% load taskboard %}
    {% taskboard_tasks module="nomina" %}      the module's task list, refreshing itself
    {% taskboard_progress task_id %}           one task's progress bar, polling until final

Both render the same fragment templates as the dashboard, so the first render and every
refresh htmx swaps in afterwards look the same. The viewer is the request's user: staff see
every task, others only their own.
"""

from __future__ import annotations

import copy
from typing import Any

from django import template
from django.http import HttpRequest, QueryDict
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django_tables2 import LazyPaginator, RequestConfig

from taskboard.models import TaskState
from taskboard.selectors import execution_get_for, execution_list_for
from taskboard.tables import TaskExecutionTable
from taskboard.views import PER_PAGE

register = template.Library()

MAX_PER_PAGE = 100


def _request(context: template.Context) -> HttpRequest:
    request = context.get("request")
    if not isinstance(request, HttpRequest):
        raise template.TemplateSyntaxError(
            "taskboard tags need django.template.context_processors.request"
        )
    return request


def _list_query(*, module: str, state: str, per_page: int | None) -> QueryDict:
    query = QueryDict(mutable=True)
    if module:
        query["module"] = module
    if state in TaskState.values:
        query["state"] = state
    if per_page is not None:
        query["per_page"] = str(min(max(per_page, 1), MAX_PER_PAGE))
    return query


def _as_list_request(request: HttpRequest, query: QueryDict) -> HttpRequest:
    # The embedded list renders as if the list fragment had been asked for with the tag's
    # filters: paging, sorting links and the polling URL then carry them, never the host
    # page's own query string.
    fragment_request = copy.copy(request)
    fragment_request.GET = query  # type: ignore[assignment]
    return fragment_request


@register.simple_tag(takes_context=True)
def taskboard_tasks(
    context: template.Context,
    module: str = "",
    state: str = "",
    per_page: int | None = None,
    limit: int | None = None,
) -> SafeString:
    """The viewer's tasks (all tasks for staff) of a module, refreshing every few seconds
    and whenever a `taskboard:changed` event reaches the page."""
    request = _request(context)
    query = _list_query(module=module, state=state, per_page=per_page or limit)
    list_request = _as_list_request(request, query)
    rows = execution_list_for(
        viewer=request.user, module=query.get("module"), state=query.get("state")
    )
    table = TaskExecutionTable(
        rows,
        page_url=reverse("taskboard:dashboard"),
        fragment_url=reverse("taskboard:list"),
    )
    # LazyPaginator: pages without a COUNT(*) over the whole table, as on the dashboard.
    RequestConfig(
        list_request, paginate={"paginator_class": LazyPaginator, "per_page": PER_PAGE}
    ).configure(table)
    return render_to_string(
        "taskboard/fragments/task-list.html",
        {"table": table, "query": query.urlencode()},
        request=list_request,
    )


@register.simple_tag(takes_context=True)
def taskboard_progress(context: template.Context, task_id: Any) -> SafeString:
    """One task's progress bar, polling until the task is finished; a short notice when the
    viewer may not see that task (or it does not exist: the two are not told apart)."""
    request = _request(context)
    execution = execution_get_for(viewer=request.user, task_id=str(task_id))
    if execution is None:
        return format_html(
            '<p class="task-progress unavailable">{}</p>', _("This task is not available.")
        )
    return render_to_string(
        "taskboard/fragments/progress.html", {"execution": execution}, request=request
    )
