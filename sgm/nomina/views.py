from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from sgm.nomina.tasks import consolidar_nomina


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
