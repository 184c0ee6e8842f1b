from __future__ import annotations

from django.urls import path, re_path

from taskboard import converters  # noqa: F401  (registers <anyid:...>)
from taskboard.api import views as api

app_name = "taskboard_api"

urlpatterns = [
    path("executions/", api.executions, name="executions"),
    path("user-tasks/", api.user_tasks, name="user_tasks"),
    path("workers/", api.workers, name="workers"),
    path("flower-info/", api.flower, name="flower_info"),
    path("cancel/<anyid:task_id>/", api.cancel, name="cancel"),
    # Last: any other path under the API answers a JSON 404.
    re_path(r"^(?P<path>.*)$", api.not_found),
]
