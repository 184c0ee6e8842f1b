"""Every route of taskboard's HTML surface (the JSON API's are in taskboard/api/urls.py)."""

from __future__ import annotations

from django.urls import path

from taskboard import converters  # noqa: F401  (registers <anyid:...>)
from taskboard.views import alerts, bulk, dashboard, executions, launch, notifications

app_name = "taskboard"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("fragments/list/", dashboard.list_fragment, name="list"),
    path("fragments/stats/", dashboard.stats_fragment, name="stats"),
    path("fragments/workers/", dashboard.workers_fragment, name="workers"),
    path("fragments/headline/", dashboard.headline_fragment, name="headline"),
    path("fragments/pulse/", dashboard.pulse, name="pulse"),
    path("modules/<anyid:module>/", dashboard.module_page, name="module"),
    # Before the <task_id> patterns, which would otherwise take these words for a task id.
    path("notifications/", notifications.notifications, name="notifications"),
    path("notifications/bell/", notifications.bell, name="bell"),
    path("notifications/read/", notifications.mark_all_read, name="notifications_read"),
    path(
        "notifications/<int:notification_id>/read/",
        notifications.mark_read,
        name="notification_read",
    ),
    path(
        "notifications/preferences/",
        notifications.preferences,
        name="notification_preferences",
    ),
    path("alerts/", alerts.alerts, name="alerts"),
    path("templates/", launch.template_list, name="templates"),
    path("templates/<anyid:key>/launch/", launch.template_launch_page, name="template_launch"),
    path("bulk/", bulk.confirm, name="bulk_confirm"),
    path("bulk/run/", bulk.run, name="bulk_run"),
    path("<anyid:task_id>/", executions.detail, name="detail"),
    path("<anyid:task_id>/progress/", executions.progress_fragment, name="progress"),
    path("<anyid:task_id>/status/", executions.status_fragment, name="status"),
    path("<anyid:task_id>/cancel/", executions.cancel, name="cancel"),
    path("<anyid:task_id>/retry/", executions.retry, name="retry"),
]
