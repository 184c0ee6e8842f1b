from __future__ import annotations

import json

from django.contrib import admin
from django.db import models, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from taskboard.forms import TaskTemplateAdminForm
from taskboard.models import (
    Alert,
    AlertDelivery,
    AlertRule,
    AlertSilence,
    NotificationPreference,
    TaskExecution,
    TaskNotification,
    TaskTemplate,
    WorkerHeartbeat,
)
from taskboard.services.totals import executions_delete_counted
from taskboard.tracking.parameters import parameters_of


@admin.register(TaskTemplate)
class TaskTemplateAdmin(admin.ModelAdmin[TaskTemplate]):
    form = TaskTemplateAdminForm
    list_display = ["key", "display_name", "module", "task_name", "is_active", "updated_at"]
    list_filter = ["module", "is_active"]
    search_fields = ["key", "display_name", "task_name"]
    filter_horizontal = ["allowed_groups"]
    readonly_fields = ["parameter_list", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["key", "display_name", "module", "task_name", "is_active"]}),
        (
            _("Launch form"),
            {
                "fields": ["description", "parameter_list", "default_kwargs", "allowed_groups"],
                "description": _(
                    "Module, display name, task and parameters of a template declared with "
                    "@track_task come from the code and are synced again when a worker starts; "
                    "the description, default kwargs, groups and the active flag are yours."
                ),
            },
        ),
        (_("History"), {"fields": ["created_at", "updated_at"]}),
    ]

    def get_readonly_fields(
        self, request: HttpRequest, obj: TaskTemplate | None = None
    ) -> list[str]:
        # The key links executions to their template: fixed once the template exists.
        fixed = ["key"] if obj is not None else []
        return [*fixed, *self.readonly_fields]

    @admin.display(description=_("parameters"))
    def parameter_list(self, obj: TaskTemplate) -> str:
        rows = parameters_of(obj.parameters)
        if not rows:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li><code>{}</code>: {}{}{}</li>",
                (
                    (
                        p["name"],
                        p["kind"],
                        _(", required") if p.get("required") else "",
                        format_html(", {} <code>{}</code>", _("default"), json.dumps(p["default"]))
                        if "default" in p
                        else "",
                    )
                    for p in rows
                ),
            ),
        )


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

    # Deleting here keeps the metrics' counters (services/totals.py), as retention does.
    def delete_model(self, request: HttpRequest, obj: TaskExecution) -> None:
        if obj.is_terminal:
            executions_delete_counted(pks=[obj.pk])
        else:
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[TaskExecution]) -> None:
        with transaction.atomic():
            pks = list(queryset.values_list("pk", flat=True))
            executions_delete_counted(pks=pks)  # the finished ones, with their totals
            TaskExecution.objects.filter(pk__in=pks).delete()  # what is left: unfinished


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


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin[NotificationPreference]):
    """Which final states notify each user (a user without a row hears of all, no e-mail)."""

    list_display = ["user", "on_success", "on_failure", "on_revoked", "on_lost", "email_failures"]
    list_filter = ["on_success", "on_failure", "on_revoked", "on_lost", "email_failures"]
    search_fields = ["user__username", "user__email"]
    raw_id_fields = ["user"]
    list_select_related = ["user"]


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin[AlertRule]):
    """Rules are written here; their state and history are on /tasks/alerts/."""

    list_display = ["name", "kind", "module", "task_name", "severity", "enabled"]
    list_filter = ["kind", "severity", "enabled", "module"]
    search_fields = ["name", "module", "task_name", "queue"]
    filter_horizontal = ["users", "groups"]
    readonly_fields = ["created_at", "last_evaluated_at"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fieldsets = [
        (None, {"fields": ["name", "kind", "severity", "enabled"]}),
        (_("Scope"), {"fields": ["module", "task_name", "queue"]}),
        (_("Condition"), {"fields": ["threshold", "min_count", "window", "factor"]}),
        (_("Recipients"), {"fields": ["users", "groups"]}),
        (
            _("Channels"),
            {
                "fields": [
                    "notify_bell",
                    "notify_email",
                    "notify_webhook",
                    "webhook_url",
                    "webhook_format",
                ]
            },
        ),
        (_("History"), {"fields": ["created_at", "last_evaluated_at"]}),
    ]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin[Alert]):
    """Written by the evaluation only: read here."""

    list_display = ["rule", "fired_at", "value", "resolved_at", "silenced"]
    list_filter = ["silenced", "rule"]
    list_select_related = ["rule"]
    readonly_fields = [
        field.name
        for field in Alert._meta.get_fields()
        if getattr(field, "concrete", False) and field.name != "id"
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AlertSilence)
class AlertSilenceAdmin(admin.ModelAdmin[AlertSilence]):
    list_display = ["__str__", "rule", "starts_at", "ends_at", "reason", "created_by"]
    list_select_related = ["rule", "created_by"]
    raw_id_fields = ["created_by"]


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(admin.ModelAdmin[AlertDelivery]):
    list_display = [
        "alert",
        "transition",
        "channel",
        "recipient",
        "enqueued_at",
        "sent_at",
        "attempts",
    ]
    list_filter = ["channel", "transition"]
    list_select_related = ["alert__rule"]
    readonly_fields = [
        field.name
        for field in AlertDelivery._meta.get_fields()
        if getattr(field, "concrete", False) and field.name != "id"
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
