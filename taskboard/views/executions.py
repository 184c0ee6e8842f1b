"""One execution: its detail page, the progress fragment that polls until it is final,
and the cancel and retry actions."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
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
from taskboard.views.htmx import CHANGED_EVENT, HtmxHttpRequest
from taskboard.views.launch import broker_unavailable, launch_refused, to_task

MAX_CHILDREN = 50


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


@login_required
@require_GET
def detail(request: HtmxHttpRequest, task_id: str) -> HttpResponse:
    execution = _execution_or_404(request, task_id)
    context = {
        "execution": execution,
        # Only those the viewer may see; the others are counted, never described (F3).
        "children": execution_children_for(
            viewer=request.user, execution=execution, limit=MAX_CHILDREN
        ),
        "can_control": can_control(request.user, execution),
        "retry": execution_retry_panel(execution=execution, viewer=request.user),
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
    try:
        cancelled = execution_cancel(execution=execution, by=request.user, terminate=terminate)
    except PermissionDenied:  # the service holds the rule: owner or staff, terminate staff
        return HttpResponse(_("You may not cancel this task."), status=403)
    except BrokerUnavailable:
        return HttpResponse(cancel_unsent_message(), status=503)
    if not cancelled:
        return HttpResponse(_("This task has already finished."), status=409)
    response = render(request, "taskboard/fragments/progress.html", {"execution": execution})
    # Every panel listening refreshes now, not at its next poll.
    return trigger_client_event(response, CHANGED_EVENT)


@login_required
@require_POST
def retry(request: HtmxHttpRequest, task_id: str) -> HttpResponse:
    """Enqueue a failed, revoked or lost task again; to the new task's page."""
    execution = execution_get_for(viewer=request.user, task_id=task_id)
    if execution is None:
        raise Http404(_("No such task."))
    try:
        new = execution_retry(execution=execution, by=request.user)
    except PermissionDenied:
        return HttpResponse(_("You may not retry this task."), status=403)
    except RetryNotPossible as problem:
        return HttpResponse(problem.reason, status=409)
    except LaunchRefused as refused:  # the user's limits (services/limits.py)
        return launch_refused(request, refused)
    except BrokerUnavailable as unsent:
        return broker_unavailable(request, unsent)
    return to_task(request, new.task_id)
