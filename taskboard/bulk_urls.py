from __future__ import annotations

from django.urls import URLPattern, path

from taskboard import bulk_views

urlpatterns: list[URLPattern] = [
    path("", bulk_views.confirm, name="bulk_confirm"),
    path("run/", bulk_views.run, name="bulk_run"),
]
