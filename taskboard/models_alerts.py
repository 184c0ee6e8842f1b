"""Alert rules, the alerts they raise, silences, and the deliveries of each transition.

Imported by taskboard.models (so Django sees them as taskboard's models); kept apart
because they are one idea of their own: watching the executions, not recording them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from taskboard.permissions import operator_lookup


class AlertKind(models.TextChoices):
    FAILURE_RATE = "failure_rate", _("Failure rate over a window")
    DURATION_P95 = "duration_p95", _("Duration p95 over a window")
    LONG_RUNNING = "long_running", _("A task running longer than k × its usual p95")
    BACKLOG_AGE = "backlog_age", _("Queued tasks older than a limit")
    QUEUE_LENGTH = "queue_length", _("Queue length above a limit")
    NO_WORKER = "no_worker", _("No worker online consuming a queue")
    LOST = "lost", _("Any task lost")


class AlertSeverity(models.TextChoices):
    INFO = "info", _("Information")
    WARNING = "warning", _("Warning")
    CRITICAL = "critical", _("Critical")


class WebhookFormat(models.TextChoices):
    JSON = "json", _("JSON (the alert's fields)")
    SLACK = "slack", _('Slack / Mattermost ({"text": …})')


# The fields each kind needs besides the window (clean() says which one is missing).
KIND_NEEDS: dict[str, tuple[str, ...]] = {
    AlertKind.FAILURE_RATE: ("threshold",),
    AlertKind.DURATION_P95: ("threshold",),
    AlertKind.LONG_RUNNING: ("factor",),
    AlertKind.BACKLOG_AGE: ("threshold",),
    AlertKind.QUEUE_LENGTH: ("threshold", "queue"),
    AlertKind.NO_WORKER: ("threshold", "queue"),
    AlertKind.LOST: (),
}


class AlertRule(models.Model):
    """A condition over the executions (or the workers) that raises an alert when it holds.

    `threshold` reads by kind: a percentage (failure rate), seconds (p95 limit, backlog age,
    no worker for), or a number of messages (queue length). `window` is both what the
    windowed kinds measure and how long a condition must stay false before the alert
    resolves (hysteresis)."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    kind = models.CharField(_("kind"), max_length=32, choices=AlertKind.choices)
    module = models.CharField(
        _("module"), max_length=64, blank=True, help_text=_("Empty: every module.")
    )
    task_name = models.CharField(
        _("task name"), max_length=255, blank=True, help_text=_("Empty: every task.")
    )
    queue = models.CharField(
        _("queue"),
        max_length=255,
        blank=True,
        help_text=_("The queue watched by the queue length and no-worker kinds."),
    )
    threshold = models.FloatField(
        _("threshold"),
        null=True,
        blank=True,
        help_text=_(
            "Failure rate: percent. Duration p95, backlog age, no worker: seconds. "
            "Queue length: messages."
        ),
    )
    min_count = models.PositiveIntegerField(
        _("at least"),
        default=1,
        help_text=_(
            "Failure rate and duration p95: finished tasks needed in the window before the "
            "rule judges. Long running: successful runs its usual p95 is of. Backlog: "
            "queued tasks that must be that old."
        ),
    )
    window = models.PositiveIntegerField(
        _("window (s)"),
        default=1800,
        help_text=_(
            "What the windowed kinds measure, and how long the condition must stay false "
            "before the alert resolves."
        ),
    )
    factor = models.FloatField(
        _("factor"), null=True, blank=True, help_text=_("Long running: k in k × usual p95.")
    )
    severity = models.CharField(
        _("severity"), max_length=16, choices=AlertSeverity.choices, default=AlertSeverity.WARNING
    )
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("staff users notified"),
        blank=True,
        related_name="+",
        limit_choices_to=operator_lookup(),
    )
    groups = models.ManyToManyField(
        "auth.Group",
        verbose_name=_("groups notified"),
        blank=True,
        related_name="+",
        help_text=_("Their active staff members are notified."),
    )
    notify_bell = models.BooleanField(_("in-app bell"), default=True)
    notify_email = models.BooleanField(_("e-mail"), default=False)
    notify_webhook = models.BooleanField(_("webhook"), default=False)
    webhook_url = models.URLField(_("webhook URL"), max_length=500, blank=True)
    webhook_format = models.CharField(
        _("webhook body"), max_length=8, choices=WebhookFormat.choices, default=WebhookFormat.JSON
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    # The instant of its latest evaluation (the database's clock): "LOST since then".
    last_evaluated_at = models.DateTimeField(
        _("last evaluated"), null=True, blank=True, editable=False
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("alert rule")
        verbose_name_plural = _("alert rules")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Each kind's own fields, present and in range, said per field."""
        errors: dict[str, str] = {}
        needs = KIND_NEEDS.get(self.kind, ())
        if "threshold" in needs and self.threshold is None:
            errors["threshold"] = str(_("This kind of rule needs a threshold."))
        if self.threshold is not None and self.threshold < 0:
            errors["threshold"] = str(_("The threshold cannot be negative."))
        if (
            self.kind == AlertKind.FAILURE_RATE
            and self.threshold is not None
            and self.threshold > 100
        ):
            errors["threshold"] = str(_("A failure rate is a percentage: 0 to 100."))
        if "factor" in needs and (self.factor is None or self.factor <= 0):
            errors["factor"] = str(_("A long-running rule needs a factor above 0 (e.g. 3)."))
        if "queue" in needs and not self.queue:
            errors["queue"] = str(_("This kind of rule watches a queue: name it."))
        if self.window < 1:
            errors["window"] = str(_("The window is at least one second."))
        if self.min_count < 1:
            errors["min_count"] = str(_("At least one."))
        if self.notify_webhook and not self.webhook_url:
            errors["webhook_url"] = str(_("The webhook channel needs a URL."))
        if errors:
            raise ValidationError(errors)

    @property
    def window_delta(self) -> timedelta:
        return timedelta(seconds=self.window)


class Alert(models.Model):
    """One firing of a rule: when it fired, the value seen, when it resolved (None: firing).

    At most one open alert per rule (a constraint), so a condition that keeps holding is
    one alert, and one notification."""

    rule = models.ForeignKey(
        AlertRule, verbose_name=_("rule"), on_delete=models.CASCADE, related_name="alerts"
    )
    fired_at = models.DateTimeField(_("fired"), default=timezone.now)
    value = models.FloatField(_("value seen"), null=True, blank=True)
    last_value = models.FloatField(_("latest value"), null=True, blank=True)
    # The latest evaluation the condition held at: it resolves one window after this.
    last_true_at = models.DateTimeField(_("last held"), default=timezone.now)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    silenced = models.BooleanField(
        _("silenced"), default=False, help_text=_("Fired while silenced: nobody was notified.")
    )

    class Meta:
        ordering = ["-fired_at", "-id"]
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        indexes = [models.Index(fields=["rule", "-fired_at"], name="tb_alert_rule_fired")]
        constraints = [
            models.UniqueConstraint(
                fields=["rule"], condition=Q(resolved_at__isnull=True), name="tb_alert_one_open"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule} @ {self.fired_at:%Y-%m-%d %H:%M}"

    @property
    def is_firing(self) -> bool:
        return self.resolved_at is None


class AlertSilence(models.Model):
    """While it lasts, the rule's alerts (every rule's, without a rule) are recorded but
    notify nobody."""

    rule = models.ForeignKey(
        AlertRule,
        verbose_name=_("rule"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="silences",
        help_text=_("Empty: every rule."),
    )
    starts_at = models.DateTimeField(_("starts"), default=timezone.now)
    ends_at = models.DateTimeField(_("ends"))
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        ordering = ["-ends_at", "-id"]
        verbose_name = _("alert silence")
        verbose_name_plural = _("alert silences")

    def __str__(self) -> str:
        scope = self.rule or _("every rule")
        return f"{scope} → {self.ends_at:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        if self.ends_at is not None and self.ends_at <= (self.starts_at or timezone.now()):
            raise ValidationError({"ends_at": _("A silence ends after it starts.")})

    def covers(self, *, rule_id: int, at: datetime) -> bool:
        return (self.rule_id in (None, rule_id)) and self.starts_at <= at < self.ends_at


class AlertTransition(models.TextChoices):
    FIRED = "fired", _("Fired")
    RESOLVED = "resolved", _("Resolved")


class AlertChannel(models.TextChoices):
    EMAIL = "email", _("E-mail")
    WEBHOOK = "webhook", _("Webhook")


class AlertDelivery(models.Model):
    """One message to send for one transition of an alert, on one channel, to one
    recipient (an e-mail address, or the webhook's URL). Unique, so a transition is sent
    once however often its sending is retried; sent_at says it went out.

    enqueued_at says it was handed to the broker (claimed by a conditional UPDATE before
    the hand-over, cleared again when the broker refused it): one never handed over is
    stranded, and the next evaluation hands it over (once)."""

    alert = models.ForeignKey(
        Alert, verbose_name=_("alert"), on_delete=models.CASCADE, related_name="deliveries"
    )
    transition = models.CharField(_("transition"), max_length=16, choices=AlertTransition.choices)
    channel = models.CharField(_("channel"), max_length=16, choices=AlertChannel.choices)
    recipient = models.CharField(_("recipient"), max_length=500)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    enqueued_at = models.DateTimeField(_("handed to the queue"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("alert delivery")
        verbose_name_plural = _("alert deliveries")
        indexes = [
            # The stranded ones, which every evaluation looks for: a handful of rows at most,
            # however long the table grows.
            models.Index(
                fields=["created_at"],
                condition=Q(sent_at__isnull=True, enqueued_at__isnull=True),
                name="tb_delivery_stranded",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "transition", "channel", "recipient"],
                name="tb_alert_delivery_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.alert} {self.transition} → {self.recipient}"
