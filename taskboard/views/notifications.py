"""The user's notifications: the header's bell, the page, marking read, preferences.

Everyone sees and changes only their own: another user's notification is a 404.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from taskboard.conf import conf
from taskboard.inputs import whole_number
from taskboard.models import NotificationPreference
from taskboard.permissions import signed_in
from taskboard.selectors.notifications import (
    notification_bell,
    notification_page,
    notification_preferences_get,
)
from taskboard.services.notifications import (
    notification_mark_read,
    notification_preferences_set,
    notifications_mark_all_read,
)
from taskboard.views.htmx import CHANGED_EVENT, HtmxHttpRequest, refused

BELL_SIZE = 5
PER_PAGE = 25
MAX_PAGE_DIGITS = 6


def _bell(request: HttpRequest) -> HttpResponse:
    count, items = notification_bell(user=signed_in(request.user), limit=BELL_SIZE)
    return render(
        request, "taskboard/fragments/bell.html", {"bell": {"count": count, "items": items}}
    )


@never_cache
@login_required
@require_GET
def bell(request: HtmxHttpRequest) -> HttpResponse:
    return _bell(request)


@login_required
@require_GET
def notifications(request: HtmxHttpRequest) -> HttpResponse:
    number = whole_number(request.GET.get("page", "1"), max_digits=MAX_PAGE_DIGITS)
    if number is None or number < 1:
        context = {"message": _("The page must be a positive number."), "back_url": request.path}
        return render(request, "400.html", context, status=400)
    page = notification_page(user=signed_in(request.user), number=number, per_page=PER_PAGE)
    if not page.items and page.number > 1:
        raise Http404(_("No such page."))
    return render(request, "taskboard/notifications.html", {"page": page})


def _next_or(request: HttpRequest, fallback: str) -> HttpResponseRedirect:
    """To the form's `next` when it is a path of this site, else to fallback.

    Only a local absolute path: redirect() would take a bare word for a view name (and fail),
    and a scheme or host, however spelled, leaves the site."""
    target = request.POST.get("next", "")
    local = (
        target.startswith("/")
        and target.isprintable()
        and url_has_allowed_host_and_scheme(target, allowed_hosts=None)
    )
    return HttpResponseRedirect(target if local else fallback)


@login_required
@require_POST
def mark_read(request: HtmxHttpRequest, notification_id: int) -> HttpResponse:
    notification = notification_mark_read(user=request.user, notification_id=notification_id)
    if notification is None:
        if request.htmx:  # beside the button; the bell and the list refresh
            return refused(_("No such notification."), status=404)
        raise Http404(_("No such notification."))
    return _next_or(request, reverse("taskboard:notifications"))


@login_required
@require_POST
def mark_all_read(request: HtmxHttpRequest) -> HttpResponse:
    notifications_mark_all_read(user=request.user)
    if request.htmx:  # the bell's button: the fresh bell, and every panel refreshes
        return trigger_client_event(_bell(request), CHANGED_EVENT)
    return _next_or(request, reverse("taskboard:notifications"))


class PreferencesForm(forms.ModelForm[NotificationPreference]):
    class Meta:
        model = NotificationPreference
        fields = ["on_success", "on_failure", "on_revoked", "on_lost", "email_failures"]


@login_required
@require_http_methods(["GET", "POST"])
def preferences(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = PreferencesForm(request.POST)
        if form.is_valid():
            notification_preferences_set(user=request.user, **form.cleaned_data)
            messages.success(request, _("Your notification preferences were saved."))
            return redirect("taskboard:notification_preferences")
        status = 422  # the form again, with what was ticked and its errors
    else:
        form = PreferencesForm(instance=notification_preferences_get(user=signed_in(request.user)))
        status = 200
    context = {
        "form": form,
        "email": getattr(request.user, "email", ""),
        # Nothing saved yet: the defaults, whose successes wait for a threshold.
        "saved": form.instance.pk is not None,
        "success_after": conf.NOTIFY_SUCCESS_AFTER_SECONDS,
    }
    return render(request, "taskboard/notification-preferences.html", context, status=status)
