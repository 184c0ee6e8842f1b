from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from sgm.nomina.tasks import consolidar_nomina, exportar_nominas
from taskboard.views.htmx import CHANGED_EVENT, HtmxHttpRequest

MAX_EMPLEADOS = 1000
EXPORT_PAGES = 600
EXPORT_PAUSE = 0.5


@login_required
@require_POST
def launch_consolidation(request: HttpRequest) -> HttpResponse:
    """Launch the payroll consolidation of a period; the launching user owns the task."""
    try:
        periodo_id = int(request.POST.get("periodo_id", ""))
    except ValueError:
        return JsonResponse({"error": _("periodo_id must be a whole number.")}, status=400)
    task_id = str(uuid.uuid4())
    transaction.on_commit(
        lambda: consolidar_nomina.apply_async(args=(periodo_id,), task_id=task_id)
    )
    return JsonResponse({"task_id": task_id}, status=202)


@login_required
@require_GET
def index(request: HtmxHttpRequest) -> HttpResponse:
    """The payroll page: launch the period's tasks and follow them."""
    return render(request, "nomina/index.html", {"max_empleados": MAX_EMPLEADOS})


class BadInput(ValueError):
    """A form value the page cannot launch anything with; the message is for the user."""


def _whole_number(raw: str, *, message: str, low: int, high: int | None = None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadInput(message) from None
    if value < low or (high is not None and value > high):
        raise BadInput(message)
    return value


def _consolidation(request: HttpRequest, periodo_id: int) -> Callable[[str], Any]:
    kwargs: dict[str, Any] = {}
    raw = request.POST.get("empleados", "").strip()
    if raw:
        kwargs["empleados"] = _whole_number(
            raw,
            message=_("The number of employees must be a whole number from 1 to %(max)d.")
            % {"max": MAX_EMPLEADOS},
            low=1,
            high=MAX_EMPLEADOS,
        )
    return lambda task_id: consolidar_nomina.apply_async(
        args=(periodo_id,), kwargs=kwargs, task_id=task_id
    )


def _export(request: HttpRequest, periodo_id: int) -> Callable[[str], Any]:
    kwargs = {"paginas": EXPORT_PAGES, "pausa": EXPORT_PAUSE}
    return lambda task_id: exportar_nominas.apply_async(
        args=(periodo_id,), kwargs=kwargs, task_id=task_id
    )


LAUNCHERS: dict[str, Callable[[HttpRequest, int], Callable[[str], Any]]] = {
    "consolidar": _consolidation,
    "exportar": _export,
}


@login_required
@require_POST
def launch(request: HtmxHttpRequest, tarea: str) -> HttpResponse:
    """Launch one of the page's tasks for a period. htmx gets the task's progress bar (and
    every task panel is told to refresh); a plain form post goes back to the page."""
    launcher = LAUNCHERS.get(tarea)
    if launcher is None:
        raise Http404(_("No such payroll task."))
    try:
        periodo_id = _whole_number(
            request.POST.get("periodo_id", ""),
            message=_("The period must be a whole number greater than zero."),
            low=1,
        )
        enqueue = launcher(request, periodo_id)
    except BadInput as exc:
        if request.htmx:
            return render(
                request, "nomina/fragments/launch-error.html", {"message": str(exc)}, status=400
            )
        context = {"max_empleados": MAX_EMPLEADOS, "error": str(exc)}
        return render(request, "nomina/index.html", context, status=400)
    task_id = str(uuid.uuid4())
    # Published once the request's writes are committed: the worker never sees a task
    # whose data is not there yet.
    transaction.on_commit(lambda: enqueue(task_id))
    if not request.htmx:
        return redirect("nomina:index")
    context = {"task_id": task_id, "tarea": tarea, "periodo_id": periodo_id}
    response = render(request, "nomina/fragments/launched.html", context)
    return trigger_client_event(response, CHANGED_EVENT)
