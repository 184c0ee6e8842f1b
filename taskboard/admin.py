from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from taskboard.models import TaskExecution, TaskNotification, TaskTemplate, WorkerHeartbeat


@admin.register(TaskTemplate)
class TaskTemplateAdmin(admin.ModelAdmin[TaskTemplate]):
    list_display = ["key", "display_name", "module", "task_name", "is_active", "updated_at"]
    list_filter = ["module", "is_active"]
    search_fields = ["key", "display_name", "task_name"]


@admin.register(TaskExecution)
class TaskExecutionAdmin(admin.ModelAdmin[TaskExecution]):
    list_display = [
        "label",
        "module",
        "user",
        "state",
        "progress",
        "worker",
        "created_at",
        "duration",
    ]
    list_filter = ["state", "module"]
    search_fields = ["task_id", "task_name", "display_name"]
    list_select_related = ["user"]
    date_hierarchy = None
    # A million rows: never count the whole table for the changelist.
    show_full_result_count = False
    raw_id_fields = ["user", "cancel_requested_by", "retry_of", "template"]
    readonly_fields = [
        field.name
        for field in TaskExecution._meta.get_fields()
        if getattr(field, "concrete", False) and field.name != "id"
    ]

    @admin.display(description=_("task"), ordering="display_name")
    def label(self, obj: TaskExecution) -> str:
        return obj.label


@admin.register(TaskNotification)
class TaskNotificationAdmin(admin.ModelAdmin[TaskNotification]):
    list_display = ["message", "user", "level", "created_at", "read_at"]
    list_filter = ["level"]
    search_fields = ["message"]
    raw_id_fields = ["user", "execution"]
    list_select_related = ["user"]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin[WorkerHeartbeat]):
    """Workers write these rows themselves; the admin only reads them (or removes old ones)."""

    list_display = ["hostname", "last_seen", "stopped_at", "concurrency", "processed", "pid"]
    search_fields = ["hostname"]
    readonly_fields = [
        field.name
        for field in WorkerHeartbeat._meta.get_fields()
        if getattr(field, "concrete", False) and field.name != "id"
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
