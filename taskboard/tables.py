"""django-tables2 tables of executions."""

from __future__ import annotations

from typing import Any

import django_tables2 as tables
from django.utils.translation import gettext_lazy as _

from taskboard.models import TaskExecution


class TaskExecutionTable(tables.Table):  # type: ignore[misc]
    label = tables.TemplateColumn(
        template_name="taskboard/cells/label.html",
        verbose_name=_("Task"),
        order_by=("display_name", "task_name"),
    )
    module = tables.Column(verbose_name=_("Module"))
    user = tables.Column(verbose_name=_("Launched by"), accessor="user__username", default="—")
    state = tables.TemplateColumn(
        template_name="taskboard/cells/state.html", verbose_name=_("State")
    )
    progress = tables.TemplateColumn(
        template_name="taskboard/cells/progress.html", verbose_name=_("Progress")
    )
    started_at = tables.DateTimeColumn(verbose_name=_("Started"), default="—")
    duration = tables.TemplateColumn(
        template_name="taskboard/cells/duration.html", verbose_name=_("Duration")
    )
    actions = tables.TemplateColumn(
        template_name="taskboard/cells/actions.html",
        verbose_name=_("Actions"),
        orderable=False,
    )

    class Meta:
        model = TaskExecution
        fields: list[str] = []
        sequence = ("label", "module", "user", "state", "progress", "started_at", "duration")
        template_name = "taskboard/table.html"
        order_by = ("-created_at",)
        empty_text = _("No tasks yet.")
        attrs = {"class": "tasks"}
        row_attrs = {"id": lambda record: f"task-{record.task_id}"}

    def __init__(self, *args: Any, page_url: str = "", fragment_url: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.page_url = page_url
        self.fragment_url = fragment_url
