from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TaskboardConfig(AppConfig):
    name = "taskboard"
    verbose_name = _("Background tasks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing connects the Celery signal handlers (web and worker alike) and checks.
        from django.db.models.signals import post_migrate

        from taskboard import checks  # noqa: F401
        from taskboard.services import notifications  # noqa: F401  (executions_finished)
        from taskboard.tracking import (
            heartbeats,  # noqa: F401
            sync_templates,
        )

        post_migrate.connect(sync_templates, sender=self, dispatch_uid="taskboard.templates")
