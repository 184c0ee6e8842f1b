from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from taskboard.views.metrics import metrics

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="taskboard:dashboard", permanent=False)),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("nomina/", include("sgm.nomina.urls")),
    path("tasks/", include("taskboard.urls")),
    path("api/tasks/", include("taskboard.api.urls")),
    # Prometheus (taskboard.views.metrics.PATH): bearer token or staff session.
    path("metrics", metrics, name="metrics"),
]
