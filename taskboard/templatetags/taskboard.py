"""Embeddable fragments: any SGM page shows its tasks without writing JavaScript.

    {% load taskboard %}
    {% taskboard_tasks module="nomina" %}      the module's task list, refreshing itself
    {% taskboard_progress task_id %}           one task's progress bar, polling until final
    {% taskboard_module_stats "nomina" %}      the module's stats panel (last 24 hours)

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
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from taskboard.models import TaskState, TaskTemplate
from taskboard.selectors.executions import execution_get_for
from taskboard.selectors.templates import template_list_launchable
from taskboard.tables import task_table
from taskboard.views.panels import stats_context

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
    return render_to_string(
        "taskboard/fragments/task-list.html",
        {"table": task_table(list_request), "query": query.urlencode()},
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


@register.simple_tag(takes_context=True)
def taskboard_module_stats(context: template.Context, module: str) -> SafeString:
    """A module's stats panel for the last 24 hours (the viewer's own tasks unless staff),
    refreshing itself like the dashboard's."""
    request = _request(context)
    return render_to_string(
        "taskboard/fragments/stats.html", stats_context(request, module=module), request=request
    )


@register.simple_tag(takes_context=True)
def taskboard_can_launch(context: template.Context) -> bool:
    """Whether the viewer may launch at least one task template (one EXISTS query):
    ``{% taskboard_can_launch as can_launch %}``."""
    return template_list_launchable(user=_request(context).user).exists()


@register.simple_tag(takes_context=True)
def taskboard_launchable_templates(context: template.Context, module: str) -> list[TaskTemplate]:
    """The module's templates the viewer may launch (one query):
    ``{% taskboard_launchable_templates module as templates %}``."""
    return list(template_list_launchable(user=_request(context).user, module=module))
