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
from django_htmx.http import retarget, trigger_client_event

from sgm.nomina.tasks import MAX_EMPLEADOS, MAX_PERIODO, consolidar_nomina, exportar_nominas
from taskboard.inputs import whole_number
from taskboard.services.limits import LaunchRefused, launch_check
from taskboard.views.htmx import CHANGED_EVENT, HtmxHttpRequest
from taskboard.views.launch import with_retry_after

EXPORT_PAGES = 600
EXPORT_PAUSE = 0.5


@login_required
@require_POST
def launch_consolidation(request: HttpRequest) -> HttpResponse:
    """Launch the payroll consolidation of a period; the launching user owns the task.
    JSON: 202 {"task_id"}, else 400 (a bad period), 409 or 429 (the user's limits) with
    {"error"}."""
    periodo_id = whole_number(request.POST.get("periodo_id", "").strip(), max_digits=9)
    if periodo_id is None or not 1 <= periodo_id <= MAX_PERIODO:
        message = _("periodo_id must be a whole number from 1 to %(max)d.") % {"max": MAX_PERIODO}
        return JsonResponse({"error": message}, status=400)
    try:
        launch_check(user=request.user, task_name=consolidar_nomina.name)
    except LaunchRefused as refused:
        response = JsonResponse(
            {"error": refused.message},
            status=refused.status,
            json_dumps_params={"ensure_ascii": False},
        )
        return with_retry_after(response, refused)
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

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def _whole_number(raw: str, *, message: str, low: int, high: int, field: str) -> int:
    # ASCII digits only: int() also takes "٣", "1_000" and thousands of digits.
    value = whole_number(raw.strip(), max_digits=len(str(high)))
    if value is None or not low <= value <= high:
        raise BadInput(message, field=field)
    return value


TASKS = {"consolidar": consolidar_nomina.name, "exportar": exportar_nominas.name}


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
            field="empleados",
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
    every task panel is told to refresh); a plain form post goes back to the page. A bad
    value (422) or a launch over the user's limits (409, 429) gets the form again, filled in
    as it was, with its message."""
    launcher = LAUNCHERS.get(tarea)
    if launcher is None:
        raise Http404(_("No such payroll task."))
    try:
        periodo_id = _whole_number(
            request.POST.get("periodo_id", ""),
            message=_("The period must be a whole number greater than zero."),
            low=1,
            high=MAX_PERIODO,
            field="periodo_id",
        )
        enqueue = launcher(request, periodo_id)
        launch_check(user=request.user, task_name=TASKS[tarea])
    except BadInput as exc:
        return _refused_form(request, str(exc), status=422, field=exc.field)
    except LaunchRefused as refused:
        return with_retry_after(
            _refused_form(request, refused.message, status=refused.status), refused
        )
    task_id = str(uuid.uuid4())
    # Published once the request's writes are committed: the worker never sees a task
    # whose data is not there yet.
    transaction.on_commit(lambda: enqueue(task_id))
    if not request.htmx:
        return redirect("nomina:index")
    context = {
        "task_id": task_id,
        "tarea": tarea,
        "periodo_id": periodo_id,
        # The form too, out of band, as it was sent: an earlier refusal's message goes.
        "form": {**_form_values(request), "oob": True},
    }
    response = render(request, "nomina/fragments/launched.html", context)
    return trigger_client_event(response, CHANGED_EVENT)


def _form_values(request: HttpRequest) -> dict[str, Any]:
    return {
        "max_empleados": MAX_EMPLEADOS,
        "periodo_id": request.POST.get("periodo_id", "")[:20],
        "empleados": request.POST.get("empleados", "")[:20],
    }


def _refused_form(
    request: HtmxHttpRequest, message: str, *, status: int, field: str = ""
) -> HttpResponse:
    """The launch form again, filled in as it was sent, with the message: for htmx it
    morphs in place of itself (the page, the header and the task list stay), else the
    whole page."""
    context = {**_form_values(request), "error": message, "error_field": field}
    if not request.htmx:
        return render(request, "nomina/index.html", context, status=status)
    response = render(request, "nomina/fragments/launch-form.html", context, status=status)
    response["HX-Reswap"] = "morph:outerHTML"  # keeps focus on the button pressed
    return retarget(response, "#nomina-launch")
