"""The staff page of alert rules: their state, the firing alerts, the history, silences."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from taskboard.forms import AlertSilenceForm
from taskboard.permissions import is_operator, signed_in
from taskboard.selectors.alerts import alert_history, alert_rule_states, silences_active
from taskboard.services.alerts import silence_create


@login_required
@require_http_methods(["GET", "POST"])
def alerts(request: HttpRequest) -> HttpResponse:
    """GET: the page. POST: a silence from its form (422 with the form's errors)."""
    if not is_operator(request.user):
        raise PermissionDenied(_("Only staff may see the alerts."))
    form = AlertSilenceForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                silence_create(
                    rule=form.cleaned_data["rule"],
                    ends_at=form.cleaned_data["ends_at"],
                    reason=form.cleaned_data["reason"],
                    by=signed_in(request.user),
                )
            except ValidationError as error:
                for name, texts in error.message_dict.items():
                    form.add_error(name if name in form.fields else None, texts)
            else:
                messages.success(request, _("Silence saved."))
                return HttpResponseRedirect(reverse("taskboard:alerts"))
        status = 422
    now = timezone.now()
    silences = silences_active(now=now)
    states = alert_rule_states(now=now, silences=silences)
    context = {
        "states": states,
        "firing": [state for state in states if state.firing is not None],
        "history": alert_history(),
        "silences": silences,
        "form": form,
    }
    return render(request, "taskboard/alerts.html", context, status=status)
