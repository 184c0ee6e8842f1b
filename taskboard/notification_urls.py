"""/tasks/notifications/…: the user's own notifications (inside the taskboard namespace)."""

from __future__ import annotations

from django.urls import path

from taskboard import notification_views as views

urlpatterns = [
    path("", views.notifications, name="notifications"),
    path("bell/", views.bell, name="bell"),
    path("read/", views.mark_all_read, name="notifications_read"),
    path("<int:notification_id>/read/", views.mark_read, name="notification_read"),
    path("preferences/", views.preferences, name="notification_preferences"),
]
