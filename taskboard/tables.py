"""django-tables2 tables of executions."""

from __future__ import annotations

from typing import Any

import django_tables2 as tables
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from taskboard.models import TaskExecution, TaskState
from taskboard.selectors import execution_list_for

PER_PAGE = 25


class TaskExecutionTable(tables.Table):  # type: ignore[misc]
    label = tables.TemplateColumn(
        template_name="taskboard/cells/label.html",
        verbose_name=_("Task"),
        order_by=("display_name", "task_name"),
    )
    module = tables.Column(verbose_name=_("Module"))
    user = tables.Column(verbose_name=_("Launched by"), accessor="user__username", default="—")
    state = tables.TemplateColumn(
        template_name="taskboard/cells/state.html", verbose_name=_("State")
    )
    progress = tables.TemplateColumn(
        template_name="taskboard/cells/progress.html", verbose_name=_("Progress")
    )
    started_at = tables.DateTimeColumn(verbose_name=_("Started"), default="—")
    duration = tables.TemplateColumn(
        template_name="taskboard/cells/duration.html", verbose_name=_("Duration")
    )
    actions = tables.TemplateColumn(
        template_name="taskboard/cells/actions.html",
        verbose_name=_("Actions"),
        orderable=False,
    )

    class Meta:
        model = TaskExecution
        fields: list[str] = []
        sequence = ("label", "module", "user", "state", "progress", "started_at", "duration")
        template_name = "taskboard/table.html"
        order_by = ("-created_at",)
        empty_text = _("No tasks yet.")
        attrs = {"class": "tasks"}
        row_attrs = {"id": lambda record: f"task-{record.task_id}"}

    def __init__(self, *args: Any, page_url: str = "", fragment_url: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.page_url = page_url
        self.fragment_url = fragment_url


def list_filters(request: HttpRequest) -> dict[str, str]:
    """The list's filters from the query string (module, state, owner, q), cleaned."""
    wanted = ("module", "state", "owner", "q")
    # NUL never reaches a query (PostgreSQL rejects it in text); long input is cut.
    values = {name: request.GET.get(name, "").replace("\x00", "").strip()[:100] for name in wanted}
    if values["state"] not in TaskState.values:
        values["state"] = ""
    return values


def task_table(request: HttpRequest) -> TaskExecutionTable:
    """What request.user may see, filtered, sorted and paged as its query string says."""
    rows = execution_list_for(viewer=request.user, **list_filters(request))
    table = TaskExecutionTable(
        rows,
        page_url=reverse("taskboard:dashboard"),
        fragment_url=reverse("taskboard:list"),
    )
    # LazyPaginator: pages without a COUNT(*) over the whole table.
    tables.RequestConfig(
        request, paginate={"paginator_class": tables.LazyPaginator, "per_page": PER_PAGE}
    ).configure(table)
    return table
