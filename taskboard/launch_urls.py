from __future__ import annotations

from django.urls import path

from taskboard import launch_views

# Included before the <task_id> patterns, which would otherwise take "templates" for a task.
urlpatterns = [
    path("templates/", launch_views.template_list, name="templates"),
    path("templates/<str:key>/launch/", launch_views.template_launch_page, name="template_launch"),
    path("<str:task_id>/retry/", launch_views.retry, name="retry"),
]
