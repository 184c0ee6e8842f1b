"""Task templates launched from the dashboard, and retrying a failed task."""

from __future__ import annotations

from itertools import groupby

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from taskboard.forms import TemplateLaunchForm
from taskboard.middleware import broker_unavailable_response
from taskboard.selectors.templates import template_get_active, template_list_launchable
from taskboard.services.launch import (
    template_can_launch,
    template_launch,
)
from taskboard.services.limits import LaunchRefused
from taskboard.services.workers.broker import BrokerUnavailable
from taskboard.views.htmx import HtmxHttpRequest
from taskboard.views.htmx import refused as refused_answer


def unsent_message(unsent: BrokerUnavailable) -> str:
    return _(
        "The task queue (broker) is unreachable: the task was not sent, and nothing ran. "
        "It is recorded as not sent; try again in a moment."
    )


def broker_unavailable(request: HtmxHttpRequest, unsent: BrokerUnavailable) -> HttpResponse:
    """503 after a launch or retry the broker did not take, with the row that says so."""
    url = reverse("taskboard:detail", args=[unsent.task_ids[0]]) if unsent.task_ids else ""
    return broker_unavailable_response(request, unsent_message(unsent), execution_url=url)


def with_retry_after(response: HttpResponse, refused: LaunchRefused) -> HttpResponse:
    """A refused launch's answer says when to come back (429) and is never cached."""
    if refused.retry_after:
        response["Retry-After"] = str(refused.retry_after)
    response["Cache-Control"] = "no-store"
    return response


def forbidden(request: HtmxHttpRequest, message: str) -> HttpResponse:
    """403: the styled page (templates/403.html) for a page, a short message for htmx."""
    if request.htmx:
        return refused_answer(message, status=403)
    raise PermissionDenied(message)


def to_task(request: HtmxHttpRequest, task_id: str) -> HttpResponse:
    """To the new task's detail page: HX-Redirect for htmx, a plain redirect otherwise."""
    url = reverse("taskboard:detail", args=[task_id])
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@login_required
@require_GET
def template_list(request: HtmxHttpRequest) -> HttpResponse:
    """The templates the user may launch, grouped by module."""
    templates = template_list_launchable(user=request.user)
    groups = [(module, list(rows)) for module, rows in groupby(templates, lambda t: t.module)]
    return render(request, "taskboard/templates.html", {"groups": groups})


@login_required
@require_http_methods(["GET", "POST"])
def template_launch_page(request: HtmxHttpRequest, key: str) -> HttpResponse:
    """GET: the template's launch form. POST: launch it, or the form again, filled in, with
    its errors (422), or with why it was refused (409 too many unfinished tasks, 429 too
    many launches, 503 the broker is unreachable); then nothing is enqueued."""
    template = template_get_active(key=key)
    if template is None:
        raise Http404(_("No such task template."))
    if not template_can_launch(template=template, user=request.user):
        return forbidden(request, _("You may not launch this task."))
    form = TemplateLaunchForm(request.POST if request.method == "POST" else None, template=template)
    status = 200
    refused: LaunchRefused | None = None
    if form.is_bound:
        if form.is_valid():
            try:
                task_id = template_launch(
                    template=template, user=request.user, kwargs=form.launch_kwargs()
                )
            except ValidationError as error:  # the service's own check of the kwargs
                for name, messages in error.message_dict.items():
                    form.add_error(name if name in form.fields else None, messages)
            except PermissionDenied:
                return forbidden(request, _("You may not launch this task."))
            except LaunchRefused as error:
                form.add_error(None, error.message)
                refused, status = error, error.status
            except BrokerUnavailable as unsent:
                # The form again, filled in: nothing the user typed is lost.
                form.add_error(None, unsent_message(unsent))
                status = 503
            else:
                return to_task(request, task_id)
        else:
            status = 422  # the form again, in place, with what was typed and its errors
    page = "taskboard/fragments/launch-form.html" if request.htmx else "taskboard/launch.html"
    response = render(request, page, {"template": template, "form": form}, status=status)
    if status == 503:
        response["Retry-After"] = "10"
    if refused is not None:
        with_retry_after(response, refused)
    return response
