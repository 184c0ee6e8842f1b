"""Bulk actions for staff: choose tasks → a confirmation that counts them → the result.

GET /tasks/bulk/ (from the list's bulk form, or a module page's "cancel all queued") shows
how many executions the action will affect; its form POSTs to /tasks/bulk/run/ with the
same selection and the primary-key range the confirmation counted, so the action touches
exactly those (never tasks created since): every matching one, however many, worked through
in batches. Every endpoint answers non-staff 403 and bad
input 400 with a message, in the site's layout (or beside the button, for htmx).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from taskboard.inputs import whole_number
from taskboard.models import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    TaskExecutionQuerySet,
    in_states,
    retryable_q,
)
from taskboard.permissions import Viewer, is_operator
from taskboard.selectors.executions import execution_bulk_preview, execution_list_for
from taskboard.selectors.stats import module_name_possible
from taskboard.services.bulk import BulkResult, executions_delete, executions_retry
from taskboard.services.cancel import executions_cancel
from taskboard.tables import filter_labels, filters_from
from taskboard.views.htmx import HtmxHttpRequest
from taskboard.views.htmx import refused as refused_answer

# Ids in one request: the list shows a page of them. (Far more fields than that, over
# DATA_UPLOAD_MAX_NUMBER_FIELDS, Django itself answers 400.)
MAX_SELECTED = 500
SCOPES = ("selected", "filter", "queued")


@dataclass(frozen=True)
class Action:
    name: str
    applies_to: Callable[[], Q]  # which executions of a selection it acts on
    run: Callable[..., BulkResult]


ACTIONS: dict[str, Action] = {
    "cancel": Action("cancel", lambda: in_states(ACTIVE_STATES), executions_cancel),
    "retry": Action("retry", retryable_q, executions_retry),
    "delete": Action("delete", lambda: in_states(TERMINAL_STATES), executions_delete),
}


class Refused(Exception):
    """A request a bulk endpoint will not act on; the message says why, for the user."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Selection:
    """Which executions a bulk action is about, as the form or confirmation sent it."""

    action: Action
    scope: str
    ids: tuple[int, ...] = ()
    # The list's filters: what scope "filter" acts on; for "selected", the way back.
    filters: dict[str, str] = field(default_factory=dict)
    module: str = ""  # scope "queued"
    low: int | None = None  # the confirmation's primary-key range (run only)
    high: int | None = None

    def rows(self, viewer: Viewer) -> TaskExecutionQuerySet:
        if self.scope == "selected":
            rows = execution_list_for(viewer=viewer).filter(pk__in=self.ids)
        elif self.scope == "filter":
            rows = execution_list_for(viewer=viewer, **self.filters)
        else:
            rows = execution_list_for(viewer=viewer, module=self.module).queued()
        if self.low is not None and self.high is not None:
            rows = rows.filter(pk__gte=self.low, pk__lte=self.high)
        return rows

    def fields(self) -> list[tuple[str, str]]:
        """The selection as form fields (the confirmation's hidden inputs)."""
        pairs = [("action", self.action.name), ("scope", self.scope)]
        pairs += [("ids", str(pk)) for pk in self.ids]
        pairs += [(name, value) for name, value in self.filters.items() if value]
        if self.module:
            pairs.append(("module", self.module))
        return pairs

    def back_url(self) -> str:
        """Where the user came from: the module page, or the list with the same filter."""
        if self.scope == "queued" and "/" not in self.module:  # a "/" has no module page
            return reverse("taskboard:module", args=[self.module])
        query = {name: value for name, value in self.filters.items() if value}
        if self.scope == "queued":
            query = {"module": self.module}
        url = reverse("taskboard:dashboard")
        return f"{url}?{urlencode(query)}" if query else url


def _integer(value: str, message: str) -> int:
    number = whole_number(value, max_digits=18)
    if number is None:
        raise Refused(message)
    return number


def _selection(data: QueryDict, *, ranged: bool) -> Selection:
    action = ACTIONS.get(data.get("action", ""))
    if action is None:
        raise Refused(_("Unknown bulk action: choose cancel, retry or delete."))
    scope = data.get("scope", "selected")
    if scope not in SCOPES:
        raise Refused(_("Unknown selection: choose the selected tasks or all matching."))
    low = high = None
    if ranged and scope != "selected":
        message = _("This confirmation is incomplete: go back to the list and start again.")
        low = _integer(data.get("low", ""), message)
        high = _integer(data.get("high", ""), message)
    if scope == "selected":
        values = data.getlist("ids")
        if not values:
            raise Refused(_("No task selected: select at least one task."))
        if len(values) > MAX_SELECTED:
            raise Refused(_("Too many tasks selected at once."))
        ids = tuple(sorted({_integer(v, _("The selection is not valid.")) for v in values}))
        return Selection(action=action, scope=scope, ids=ids, filters=filters_from(data))
    if scope == "filter":
        return Selection(action=action, scope=scope, filters=filters_from(data), low=low, high=high)
    module = data.get("module", "")
    if not module_name_possible(module):
        raise Refused(_("Name the module whose queued tasks are to be cancelled."))
    if action.name != "cancel":
        raise Refused(_("Queued tasks can only be cancelled."))
    return Selection(action=action, scope=scope, module=module, low=low, high=high)


def _staff_selection(request: HttpRequest, data: QueryDict, *, ranged: bool) -> Selection:
    if not is_operator(request.user):
        raise Refused(_("Only staff may act on many tasks at once."), status=403)
    return _selection(data, ranged=ranged)


def _refuse(request: HtmxHttpRequest, refused: Refused) -> HttpResponse:
    """The bulk forms are plain forms: a refusal is a page in the site's layout (403.html
    for non-staff), with the way back; an htmx caller gets the message beside its button."""
    if request.htmx:
        return refused_answer(refused.message, status=refused.status)
    if refused.status == 403:
        raise PermissionDenied(refused.message)
    context = {"message": refused.message, "back_url": reverse("taskboard:dashboard")}
    return render(request, "400.html", context, status=refused.status)


def _described(selection: Selection) -> dict[str, Any]:
    return {
        "selection": selection,
        "action": selection.action.name,
        "filter_labels": filter_labels(selection.filters),
        "back_url": selection.back_url(),
    }


@login_required
@require_GET
def confirm(request: HtmxHttpRequest) -> HttpResponse:
    try:
        selection = _staff_selection(request, request.GET, ranged=False)
    except Refused as refused:
        return _refuse(request, refused)
    # Every matching row, counted (F10: no cap; the action walks them in batches).
    preview = execution_bulk_preview(
        rows=selection.rows(request.user), affected=selection.action.applies_to()
    )
    fields = selection.fields()
    if selection.scope != "selected" and preview.low is not None:
        fields += [("low", str(preview.low)), ("high", str(preview.high))]
    context = {
        **_described(selection),
        "preview": preview,
        "skipped": preview.total - preview.affected,
        "fields": fields,
    }
    return render(request, "taskboard/bulk-confirm.html", context)


@login_required
@require_POST
def run(request: HtmxHttpRequest) -> HttpResponse:
    try:
        selection = _staff_selection(request, request.POST, ranged=True)
    except Refused as refused:
        return _refuse(request, refused)
    result = selection.action.run(rows=selection.rows(request.user), by=request.user)
    # Retries the broker did not take: recorded as not sent, and the page says so (503).
    status = 503 if result.action == "retry" and result.unsent else 200
    context = {**_described(selection), "result": result}
    return render(request, "taskboard/bulk-done.html", context, status=status)
