from __future__ import annotations

from django.urls import include, path

from taskboard import views

app_name = "taskboard"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("fragments/list/", views.list_fragment, name="list"),
    path("fragments/stats/", views.stats_fragment, name="stats"),
    path("fragments/workers/", views.workers_fragment, name="workers"),
    # Before the <task_id> patterns, which would otherwise take these words for a task id.
    path("notifications/", include("taskboard.notification_urls")),
    path("", include("taskboard.launch_urls")),
    path("bulk/", include("taskboard.bulk_urls")),
    path("modules/<str:module>/", views.module_page, name="module"),
    path("<str:task_id>/", views.detail, name="detail"),
    path("<str:task_id>/progress/", views.progress_fragment, name="progress"),
    path("<str:task_id>/cancel/", views.cancel, name="cancel"),
]
