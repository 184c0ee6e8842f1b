from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TaskboardConfig(AppConfig):
    name = "taskboard"
    verbose_name = _("Background tasks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing connects the Celery signal handlers (web and worker alike) and checks.
        from django.db.models.signals import post_migrate, post_save

        from taskboard import checks  # noqa: F401
        from taskboard.services import notifications  # noqa: F401  (executions_finished)
        from taskboard.tracking import (
            heartbeats,  # noqa: F401
            sync_templates,
        )

        post_migrate.connect(sync_templates, sender=self, dispatch_uid="taskboard.templates")
        # A row created or saved through the ORM (a launch, a retry) changes what polls show;
        # the recorder's own SQL and the services' bulk writes bump the stamp themselves.
        from taskboard.models import TaskExecution
        from taskboard.tracking.stamps import on_execution_saved

        post_save.connect(on_execution_saved, sender=TaskExecution, dispatch_uid="taskboard.stamp")
        # A user saved or deleted is no longer taken on trust by an idle pulse (views/polls.py).
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete

        from taskboard.views.polls import viewer_forget

        user_model = get_user_model()
        post_save.connect(viewer_forget, sender=user_model, dispatch_uid="taskboard.viewer_saved")
        post_delete.connect(viewer_forget, sender=user_model, dispatch_uid="taskboard.viewer_gone")
