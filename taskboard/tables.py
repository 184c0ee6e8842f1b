"""django-tables2 tables of executions."""

from __future__ import annotations

from typing import Any

import django_tables2 as tables
from django.http import HttpRequest, QueryDict
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from taskboard.models import TaskExecution, TaskState
from taskboard.permissions import is_operator
from taskboard.selectors.estimates import execution_estimates
from taskboard.selectors.executions import execution_list_for

PER_PAGE = 25
FILTER_NAMES = ("module", "state", "owner", "q")


class TaskExecutionTable(tables.Table):  # type: ignore[misc]
    # Staff only (excluded for others): the rows a bulk action applies to.
    select = tables.CheckBoxColumn(
        accessor="pk",
        attrs={
            "th__input": {"data-bulk-all": "", "aria-label": _("Select every task on this page")},
            "td__input": {"name": "ids", "data-bulk-row": "", "aria-label": _("Select")},
        },
    )
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
        sequence = (
            "select",
            "label",
            "module",
            "user",
            "state",
            "progress",
            "started_at",
            "duration",
        )
        template_name = "taskboard/table.html"
        order_by = ("-created_at",)
        empty_text = _("No tasks yet.")
        attrs = {"class": "tasks"}
        row_attrs = {"id": lambda record: f"task-{record.task_id}"}

    def __init__(
        self,
        *args: Any,
        page_url: str = "",
        fragment_url: str = "",
        bulk_filters: dict[str, str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.page_url = page_url
        self.fragment_url = fragment_url
        # Set for staff: rows get checkboxes, and the list a bulk form with these filters.
        self.bulk_filters = bulk_filters

    @property
    def bulk(self) -> bool:
        return self.bulk_filters is not None

    @property
    def bulk_filter_items(self) -> list[tuple[str, str]]:
        """The active filters as (name, value) pairs, for the bulk form's hidden fields."""
        return [(name, value) for name, value in (self.bulk_filters or {}).items() if value]

    @property
    def bulk_filter_labels(self) -> list[tuple[str, str]]:
        """The active filters as people read them: (what, value)."""
        return filter_labels(self.bulk_filters or {})


def filters_from(data: QueryDict) -> dict[str, str]:
    """The list's filters (module, state, owner, q) from a query string or form, cleaned."""
    # NUL never reaches a query (PostgreSQL rejects it in text); long input is cut.
    values = {name: data.get(name, "").replace("\x00", "").strip()[:100] for name in FILTER_NAMES}
    if values["state"] not in TaskState.values:
        values["state"] = ""
    return values


def list_filters(request: HttpRequest) -> dict[str, str]:
    """The list's filters from the query string (module, state, owner, q), cleaned."""
    return filters_from(request.GET)


def filter_labels(filters: dict[str, str]) -> list[tuple[str, str]]:
    """(what, value) of each active filter, in the words of the list's filter form."""
    names = {"module": _("Module"), "state": _("State"), "owner": _("Owner"), "q": _("Search")}
    return [
        (str(names[name]), str(TaskState(value).label) if name == "state" else value)
        for name, value in filters.items()
        if value and name in names
    ]


def task_table(request: HttpRequest) -> TaskExecutionTable:
    """What request.user may see, filtered, sorted and paged as its query string says."""
    filters = list_filters(request)
    rows = execution_list_for(viewer=request.user, **filters)
    staff = is_operator(request.user)
    table = TaskExecutionTable(
        rows,
        page_url=reverse("taskboard:dashboard"),
        fragment_url=reverse("taskboard:list"),
        bulk_filters=filters if staff else None,
        exclude=() if staff else ("select",),
    )
    # LazyPaginator: pages without a COUNT(*) over the whole table.
    tables.RequestConfig(
        request, paginate={"paginator_class": tables.LazyPaginator, "per_page": PER_PAGE}
    ).configure(table)
    page = getattr(table, "page", None)
    if page is not None:
        # The page's estimates at once: one query for every queued row's typical duration.
        execution_estimates(executions=[row.record for row in page.object_list])
    return table
