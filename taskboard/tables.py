"""django-tables2 tables of executions."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import django_tables2 as tables
from django.core.paginator import EmptyPage
from django.http import HttpRequest, QueryDict
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from taskboard.inputs import whole_number
from taskboard.models import TaskExecution, TaskState
from taskboard.permissions import is_operator
from taskboard.selectors.estimates import execution_estimates
from taskboard.selectors.executions import (
    SINCE_WINDOWS,
    STATE_GROUPS,
    deep_paged,
    execution_list_for,
)

PER_PAGE = 25
MAX_PER_PAGE = 100  # a larger per_page is clamped to this
MAX_PAGE = 999_999  # of 100 rows: an OFFSET every database takes
FILTER_NAMES = ("module", "state", "owner", "q", "since")


class TaskExecutionTable(tables.Table):  # type: ignore[misc]
    """Ordering and paging of the list (column names, sort aliases, LazyPaginator). Its rows
    are rendered by one row template (taskboard/table.html), never cell by cell: the
    columns here say what each header is and whether it sorts, nothing about the cells."""

    # Staff only (excluded for others): the rows a bulk action applies to.
    select = tables.Column(accessor="pk", verbose_name="", orderable=False)
    # Each sort walks an index of the model's (newest first within equal values; the last
    # field makes the order total, so pages never repeat or skip a row). Owner, state and
    # progress do not sort: the filters select by owner and state, and an index on a
    # username (another table) or on progress (every report rewrites it) would cost every
    # tracking write for a sort nobody needs at a million rows.
    label = tables.Column(
        verbose_name=_("Task"), order_by=("display_name", "task_name", "-created_at", "-id")
    )
    module = tables.Column(verbose_name=_("Module"), order_by=("module", "-created_at", "-id"))
    user = tables.Column(verbose_name=_("Launched by"), accessor="user__username", orderable=False)
    state = tables.Column(verbose_name=_("State"), orderable=False)
    progress = tables.Column(verbose_name=_("Progress"), orderable=False)
    started_at = tables.Column(verbose_name=_("Started"), order_by=("started_at", "id"))
    duration = tables.Column(verbose_name=_("Duration"), order_by=("duration", "id"))
    actions = tables.Column(verbose_name=_("Actions"), accessor="pk", orderable=False)

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
            "actions",
        )
        template_name = "taskboard/table.html"
        order_by = ("-created_at",)
        empty_text = _("No tasks yet.")
        attrs = {"class": "tasks"}

    def __init__(
        self,
        *args: Any,
        page_url: str = "",
        fragment_url: str = "",
        bulk_filters: dict[str, str] | None = None,
        filters: dict[str, str] | None = None,
        push_url: bool = False,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.page_url = page_url
        self.fragment_url = fragment_url
        # The list on the dashboard: its sort and page links put their query in the address
        # bar (an embedded list on another page leaves that page's address alone).
        self.push_url = push_url
        self.filters = filters or {}
        self.sort_values: list[str] = []
        # Set for staff: rows get checkboxes, and the list a bulk form with these filters.
        self.bulk_filters = bulk_filters
        # The page asked for when it is past the last one: the list says so (no rows).
        self.past_end: int | None = None

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

    @cached_property
    def cell_labels(self) -> dict[str, str]:
        """Each column's header, once per render: a phone's card names its cells with them."""
        return {column.name: str(column.header) for column in self.columns}

    @property
    def filter_labels(self) -> list[tuple[str, str]]:
        """The active filters as people read them, for the empty list's wording."""
        return filter_labels(self.filters)


# The state filter's groups and the since filter's windows, in the filter form's words
# (what they select is in selectors/executions.py: STATE_GROUPS, SINCE_WINDOWS).
STATE_GROUP_CHOICES = (
    ("running", _("Running")),
    ("queued", _("Queued")),
    ("failed", _("Failed or lost")),
)
SINCE_CHOICES = (
    ("1h", _("Last hour")),
    ("24h", _("Last 24 hours")),
    ("7d", _("Last 7 days")),
)


def filters_from(data: QueryDict) -> dict[str, str]:
    """The list's filters (module, state, owner, q, since) from a query string or form,
    cleaned: a state that is neither a state nor a group, or an unknown window, is none."""
    # NUL never reaches a query (PostgreSQL rejects it in text); long input is cut.
    values = {name: data.get(name, "").replace("\x00", "").strip()[:100] for name in FILTER_NAMES}
    if values["state"] not in TaskState.values and values["state"] not in STATE_GROUPS:
        values["state"] = ""
    if values["since"] not in SINCE_WINDOWS:
        values["since"] = ""
    return values


def list_filters(request: HttpRequest) -> dict[str, str]:
    """The list's filters from the query string (module, state, owner, q), cleaned."""
    return filters_from(request.GET)


def filter_labels(filters: dict[str, str]) -> list[tuple[str, str]]:
    """(what, value) of each active filter, in the words of the list's filter form."""
    names = {
        "module": _("Module"),
        "state": _("State"),
        "owner": _("Owner"),
        "q": _("Search"),
        "since": _("Created"),
    }
    return [
        (str(names[name]), _filter_value_label(name, value))
        for name, value in filters.items()
        if value and name in names
    ]


def _filter_value_label(name: str, value: str) -> str:
    if name == "state":
        groups = dict(STATE_GROUP_CHOICES)
        return str(groups[value] if value in groups else TaskState(value).label)
    if name == "since":
        return str(dict(SINCE_CHOICES)[value])
    return value


def page_number(data: QueryDict) -> int:
    """The list's page, clamped: 1 unless it is a whole number; at most MAX_PAGE (and a page
    past the last is the first, see task_table)."""
    raw = data.get("page", "")
    if not (raw.isascii() and raw.isdigit()):
        return 1
    if len(raw) > len(str(MAX_PAGE)):
        return MAX_PAGE
    return min(max(int(raw), 1), MAX_PAGE)


def rows_per_page(data: QueryDict) -> int:
    """per_page clamped to 1..MAX_PER_PAGE; the default when it is not a whole number."""
    number = whole_number(data.get("per_page", ""), max_digits=6)
    if number is None or number < 1:
        return PER_PAGE
    return min(number, MAX_PER_PAGE)


def sort_order(table: TaskExecutionTable, data: QueryDict) -> list[str]:
    """The `sort` values that name a sortable column of table ("-" for descending); any
    other is ignored."""
    names = {column.name for column in table.columns if column.orderable}
    return [v for v in data.getlist("sort")[:3] if v.removeprefix("-") in names]


def task_table(request: HttpRequest, *, push_url: bool = False) -> TaskExecutionTable:
    """What request.user may see, filtered, sorted and paged as its query string says
    (page and per_page clamped). push_url: the links put their query in the address bar."""
    page = page_number(request.GET)
    per_page = rows_per_page(request.GET)
    filters = list_filters(request)
    rows = deep_paged(execution_list_for(viewer=request.user, **filters))
    staff = is_operator(request.user)
    table = TaskExecutionTable(
        rows,
        page_url=reverse("taskboard:dashboard"),
        fragment_url=reverse("taskboard:list"),
        bulk_filters=filters if staff else None,
        filters=filters,
        push_url=push_url,
        exclude=() if staff else ("select",),
    )
    # Sorting and paging from checked values, not RequestConfig's: it would pass any int() to
    # the query (an OFFSET past a bigint is a database error) and any text as an accessor.
    table.request = request
    order_by = sort_order(table, request.GET)
    if order_by:
        table.order_by = order_by
    table.sort_values = order_by  # carried by the filter form, so filtering keeps the sort
    # LazyPaginator: pages without a COUNT(*) over the whole table.
    try:
        table.paginate(paginator_class=tables.LazyPaginator, per_page=per_page, page=page)
    except EmptyPage:
        # Past the end (the last page is unknown without a COUNT): the list says so, with a
        # link to the first page, rather than showing the first page as if it were asked for.
        table.past_end = page
        table.paginate(paginator_class=tables.LazyPaginator, per_page=per_page, page=1)
        return table
    # The page's estimates at once: one query for every queued row's typical duration.
    execution_estimates(executions=[row.record for row in table.page.object_list])
    return table
