from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TaskboardConfig(AppConfig):
    name = "taskboard"
    verbose_name = _("Background tasks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing connects the Celery signal handlers (web and worker alike) and checks.
        from taskboard import checks, tracking  # noqa: F401
