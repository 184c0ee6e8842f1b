"""One execution: its detail page, whose status block polls until the task is final, the
progress fragment other pages embed, and the cancel and retry actions."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HTMX_STOP_POLLING, trigger_client_event

from taskboard.models import TaskExecution
from taskboard.permissions import can_control
from taskboard.selectors.executions import execution_children_for, execution_get_for
from taskboard.services.cancel import execution_cancel
from taskboard.services.launch import RetryNotPossible, execution_retry, execution_retry_panel
from taskboard.services.limits import LaunchRefused
from taskboard.services.workers.broker import BrokerUnavailable
from taskboard.views.htmx import CHANGED_EVENT, HtmxHttpRequest, refused
from taskboard.views.launch import broker_unavailable, to_task, unsent_message, with_retry_after

MAX_CHILDREN = 50
PROGRESS = "taskboard/fragments/progress.html"
STATUS = "taskboard/fragments/detail-status.html"
STATUS_ID = "detail-status"  # the status block's element id (its cancel buttons target it)


def cancel_unsent_message() -> str:
    return _(
        "The cancel is recorded, but the task queue (broker) is unreachable: a queued task "
        "will not run, a running one stops at its next progress report."
    )


def _execution_or_404(request: HttpRequest, task_id: str) -> TaskExecution:
    execution = execution_get_for(viewer=request.user, task_id=task_id)
    if execution is None:
        raise Http404(_("No such task."))
    return execution


def _status_context(request: HttpRequest, execution: TaskExecution) -> dict[str, Any]:
    """What the status block shows: state, actions, error, result, retry, timeline."""
    return {
        "execution": execution,
        "can_control": can_control(request.user, execution),
        "retry": execution_retry_panel(execution=execution, viewer=request.user),
    }


def _final(response: HttpResponse, execution: TaskExecution) -> HttpResponse:
    if execution.is_terminal:
        response.status_code = HTMX_STOP_POLLING  # 286: htmx stops polling by itself
    return response


@login_required
@require_GET
def detail(request: HtmxHttpRequest, task_id: str) -> HttpResponse:
    execution = _execution_or_404(request, task_id)
    context = {
        **_status_context(request, execution),
        # Only those the viewer may see; the others are counted, never described (F3).
        "children": execution_children_for(
            viewer=request.user, execution=execution, limit=MAX_CHILDREN
        ),
    }
    return render(request, "taskboard/detail.html", context)


@login_required
@require_GET
def status_fragment(request: HtmxHttpRequest, task_id: str) -> HttpResponse:
    """The detail page's status block; once the task is final, its last render (286)."""
    execution = _execution_or_404(request, task_id)
    response = render(request, STATUS, _status_context(request, execution))
    return _final(response, execution)


@login_required
@require_GET
def progress_fragment(request: HtmxHttpRequest, task_id: str) -> HttpResponse:
    """One task's progress bar (embedded by other pages), polling until it is final."""
    execution = _execution_or_404(request, task_id)
    response = render(request, PROGRESS, {"execution": execution})
    return _final(response, execution)


def _refused(
    request: HtmxHttpRequest, execution: TaskExecution, text: str, *, status: int
) -> HttpResponse:
    """An action refused: for htmx the message beside the button (and the panels refresh);
    after a plain form post, a page that says it, with the way back to the task."""
    if request.htmx:
        return refused(text, status=status)
    if status == 403:
        raise PermissionDenied(text)
    back = reverse("taskboard:detail", args=[execution.task_id])
    context = {"message": text, "status": status, "back_url": back}
    return render(request, "taskboard/refused.html", context, status=status)


@login_required
@require_POST
def cancel(request: HtmxHttpRequest, task_id: str) -> HttpResponse:
    """Cancel (or, staff, terminate). A refusal is a message beside the button, and every
    panel refreshes: a stale Cancel (the task finished meanwhile) shows what is true now."""
    execution = _execution_or_404(request, task_id)
    terminate = request.POST.get("terminate") == "1"
    try:
        cancelled = execution_cancel(execution=execution, by=request.user, terminate=terminate)
    except PermissionDenied:  # the service holds the rule: owner or staff, terminate staff
        return _refused(request, execution, _("You may not cancel this task."), status=403)
    except BrokerUnavailable:
        response = _refused(request, execution, cancel_unsent_message(), status=503)
        response["Retry-After"] = "10"
        return response
    if not cancelled:
        return _refused(request, execution, _("This task has already finished."), status=409)
    # The detail page's status block asks for itself; any other caller gets the bar.
    if request.htmx.target == STATUS_ID:
        response = render(request, STATUS, _status_context(request, execution))
    else:
        response = render(request, PROGRESS, {"execution": execution})
    # Every panel listening refreshes now, not at its next poll.
    return trigger_client_event(response, CHANGED_EVENT)


@login_required
@require_POST
def retry(request: HtmxHttpRequest, task_id: str) -> HttpResponse:
    """Enqueue a failed, revoked or lost task again; to the new task's page. A refusal is
    a message beside the button (403, 409 not retryable, 429/409 the user's limits, 503)."""
    execution = _execution_or_404(request, task_id)
    try:
        new = execution_retry(execution=execution, by=request.user)
    except PermissionDenied:
        return _refused(request, execution, _("You may not retry this task."), status=403)
    except RetryNotPossible as problem:
        return _refused(request, execution, problem.reason, status=409)
    except LaunchRefused as over:  # the user's limits (services/limits.py)
        response = _refused(request, execution, over.message, status=over.status)
        return with_retry_after(response, over)
    except BrokerUnavailable as unsent:
        if not request.htmx:
            return broker_unavailable(request, unsent)
        response = refused(unsent_message(unsent), status=503)
        response["Retry-After"] = "10"
        return response
    return to_task(request, new.task_id)
