"""Alert evaluation: measure each enabled rule, fire or resolve its alert (once each), and
notify its recipients on its channels; and the sending of one delivery (e-mail, webhook).
The open alert of a rule that was disabled resolves on the next evaluation (nothing
measures that rule any more).

An alert fires on the first evaluation its condition holds at, and resolves once the
condition has not held for a whole window (hysteresis: a rate hovering at the threshold
is one alert, not a storm). One evaluation at a time (a lock); each transition is written
once (a unique open alert per rule, a conditional UPDATE to resolve), and its deliveries
are unique per channel and recipient, so a retry never sends twice what went out.
A delivery the broker refused when its alert fired is handed over by a later evaluation,
once (a conditional UPDATE claims it before each hand-over).
"""

from __future__ import annotations

import contextlib
import json
import logging
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from taskboard.conf import conf
from taskboard.models import (
    Alert,
    AlertChannel,
    AlertDelivery,
    AlertKind,
    AlertRule,
    AlertSeverity,
    AlertSilence,
    AlertTransition,
    TaskNotification,
    WebhookFormat,
    capped,
    database_now,
)
from taskboard.permissions import operator_lookup
from taskboard.selectors.alerts import (
    MEASURES,
    UNKNOWN,
    Measurement,
    silenced_until,
    silences_active,
)

logger = logging.getLogger(__name__)

DELIVER_TASK = "taskboard.alert_deliver"
# Evaluation and deliveries have a queue of their own: a backlog alert must not wait
# behind the backlog it reports.
ALERTS_QUEUE = "taskboard-alerts"
LOCK_KEY = "taskboard:alerts:evaluating"
# pg_try_advisory_lock's key: any constant of taskboard's own ("tbalert" in ASCII).
ADVISORY_LOCK_ID = 0x7462616C657274
# A delivery not handed to the broker this long after it was written is stranded (its
# transition's own hand-over, right after the commit, had its chance); at most this many
# per evaluation, so a long outage's backlog drains over a few evaluations, not one long one.
REQUEUE_AFTER = timedelta(seconds=30)
REQUEUE_BATCH = 100


@dataclass
class Evaluation:
    """What one evaluation did (rule names), for logs and tests."""

    evaluated: int = 0
    fired: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    requeued: int = 0  # stranded deliveries handed to the broker


# --- The lock ------------------------------------------------------------------------------


@contextlib.contextmanager
def evaluation_lock() -> Iterator[bool]:
    """True when this process may evaluate now (no other evaluation runs): a PostgreSQL
    advisory lock (held by this connection, freed if the process dies), or on SQLite (one
    machine) a cache.add gate that expires after TASKBOARD_ALERT_LOCK_SECONDS."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_ID])
            (taken,) = cursor.fetchone()
        try:
            yield bool(taken)
        finally:
            if taken:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_ID])
        return
    token = uuid.uuid4().hex
    taken = cache.add(LOCK_KEY, token, timeout=conf.ALERT_LOCK_SECONDS)
    try:
        yield bool(taken)
    finally:
        if taken and cache.get(LOCK_KEY) == token:
            cache.delete(LOCK_KEY)


# --- Evaluation ----------------------------------------------------------------------------


def alerts_evaluate(*, now: datetime | None = None) -> Evaluation | None:
    """Evaluate every enabled rule once; None when another evaluation is running."""
    with evaluation_lock() as taken:
        if not taken:
            logger.info("taskboard: alert evaluation skipped, another one is running")
            return None
        return _evaluate(now or database_now())


def _evaluate(now: datetime) -> Evaluation:
    result = Evaluation(requeued=alert_deliveries_requeue(now=now))
    rules = list(AlertRule.objects.filter(enabled=True))
    open_alerts = {
        a.rule_id: a for a in Alert.objects.filter(resolved_at__isnull=True).select_related("rule")
    }
    if not rules and not open_alerts:
        return result
    silences = silences_active(now=now)
    for alert in open_alerts.values():
        if not alert.rule.enabled:
            _resolve_disabled(alert, now, silences=silences, result=result)
    measured: list[int] = []
    for rule in rules:
        measurement = measure(rule, now)
        if measurement.holds is None:
            result.unknown.append(rule.name)
            continue
        measured.append(rule.pk)
        silenced = silenced_until(silences=silences, rule_id=rule.pk, now=now) is not None
        transition = _apply(rule, open_alerts.get(rule.pk), measurement, now, silenced=silenced)
        if transition == AlertTransition.FIRED:
            result.fired.append(rule.name)
        elif transition == AlertTransition.RESOLVED:
            result.resolved.append(rule.name)
    AlertRule.objects.filter(pk__in=measured).update(last_evaluated_at=now)
    result.evaluated = len(measured)
    return result


def _resolve_disabled(
    alert: Alert, now: datetime, *, silences: list[AlertSilence], result: Evaluation
) -> None:
    """A disabled rule is no longer measured, so nothing else would ever resolve its open
    alert: it resolves now, and its recipients hear so once (unless silenced), with the
    reason in the message. Only while the rule is still disabled (re-enabled meanwhile, it
    is judged again as usual)."""
    rule = alert.rule
    silenced = silenced_until(silences=silences, rule_id=rule.pk, now=now) is not None
    if alert_resolve(alert=alert, rule=rule, now=now, silenced=silenced, only_if_disabled=True):
        result.resolved.append(rule.name)


def measure(rule: AlertRule, now: datetime) -> Measurement:
    """The rule's measurement now; a failing measurement is logged and unknown (one broken
    rule never stops the others)."""
    try:
        if rule.kind == AlertKind.QUEUE_LENGTH:
            return queue_length(rule)
        measure_kind = MEASURES.get(rule.kind)
        return UNKNOWN if measure_kind is None else measure_kind(rule, now)
    except Exception:
        logger.exception("taskboard: alert rule %r could not be measured", rule.name)
        return UNKNOWN


def queue_length(rule: AlertRule) -> Measurement:
    """Messages waiting in the rule's queue, from the workers snapshot (cached, one fetch
    per interval for every viewer) or, for a queue no online worker consumes, from the
    broker; unknown when the broker does not say."""
    from taskboard.services.workers import workers_snapshot
    from taskboard.services.workers.sources import broker_queue_lengths

    lengths = workers_snapshot().queue_lengths or {}
    length = lengths.get(rule.queue)
    if length is None:
        length = (broker_queue_lengths([rule.queue]) or {}).get(rule.queue)
    if length is None:
        return UNKNOWN
    return Measurement(holds=length > (rule.threshold or 0), value=float(length))


def _apply(
    rule: AlertRule,
    alert: Alert | None,
    measurement: Measurement,
    now: datetime,
    *,
    silenced: bool,
) -> str | None:
    """Fire, keep, or resolve the rule's alert; the transition made (None: no change)."""
    if measurement.holds:
        if alert is not None:
            Alert.objects.filter(pk=alert.pk).update(last_true_at=now, last_value=measurement.value)
            return None
        alert_fire(rule=rule, value=measurement.value, now=now, silenced=silenced)
        return AlertTransition.FIRED
    quiet_long_enough = alert is not None and now - alert.last_true_at >= rule.window_delta
    if alert is not None and quiet_long_enough:
        resolved = alert_resolve(alert=alert, rule=rule, now=now, silenced=silenced)
        return AlertTransition.RESOLVED if resolved else None
    return None


def alert_fire(*, rule: AlertRule, value: float | None, now: datetime, silenced: bool) -> Alert:
    """Record the firing and, unless silenced, notify (in one transaction: an alert exists
    with its deliveries, or not at all)."""
    with transaction.atomic():
        alert = Alert.objects.create(
            rule=rule,
            fired_at=now,
            value=value,
            last_value=value,
            last_true_at=now,
            silenced=silenced,
        )
        if not silenced:
            alert_notify(alert=alert, rule=rule, transition=AlertTransition.FIRED)
    return alert


def alert_resolve(
    *,
    alert: Alert,
    rule: AlertRule,
    now: datetime,
    silenced: bool,
    only_if_disabled: bool = False,
) -> bool:
    """Resolve an open alert once (a conditional UPDATE); notify unless silenced now or
    silenced when it fired (nobody heard it fire). only_if_disabled: only while its rule is
    disabled (checked in the same UPDATE, so an admin re-enabling it meanwhile wins)."""
    with transaction.atomic():
        still_open = Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True)
        if only_if_disabled:
            still_open = still_open.filter(rule__enabled=False)
        updated = still_open.update(resolved_at=now)
        if not updated:
            return False
        alert.resolved_at = now
        if not (silenced or alert.silenced):
            alert_notify(alert=alert, rule=rule, transition=AlertTransition.RESOLVED)
    return True


# --- Notifying -----------------------------------------------------------------------------


def alert_recipients(*, rule: AlertRule) -> list[Any]:
    """The rule's staff users and the staff members of its groups, active, each once."""
    users = get_user_model().objects.filter(
        Q(pk__in=rule.users.values("pk")) | Q(groups__in=rule.groups.values("pk")),
        is_active=True,
        **operator_lookup(),
    )
    return list(users.distinct().order_by("pk"))


BELL_LEVELS: dict[str, str] = {
    AlertSeverity.INFO: TaskNotification.Level.INFO,
    AlertSeverity.WARNING: TaskNotification.Level.WARNING,
    AlertSeverity.CRITICAL: TaskNotification.Level.ERROR,
}


def alert_notify(*, alert: Alert, rule: AlertRule, transition: str) -> None:
    """One bell notification per recipient, and one delivery per e-mail recipient and
    webhook, sent by Celery (DELIVER_TASK) once the transaction commits."""
    recipients = alert_recipients(rule=rule) if rule.notify_bell or rule.notify_email else []
    text = alert_text(rule=rule, transition=transition, value=alert_value(alert, transition))
    if rule.notify_bell and recipients:
        level = (
            TaskNotification.Level.SUCCESS
            if transition == AlertTransition.RESOLVED
            else BELL_LEVELS.get(rule.severity, TaskNotification.Level.WARNING)
        )
        TaskNotification.objects.bulk_create(
            TaskNotification(
                user=user, level=level, message=capped("message", text, TaskNotification)
            )
            for user in recipients
        )
    deliveries: list[AlertDelivery] = []
    if rule.notify_email:
        emails = sorted({user.email for user in recipients if user.email})
        deliveries += [
            AlertDelivery(
                alert=alert, transition=transition, channel=AlertChannel.EMAIL, recipient=e
            )
            for e in emails
        ]
    if rule.notify_webhook and rule.webhook_url:
        deliveries.append(
            AlertDelivery(
                alert=alert,
                transition=transition,
                channel=AlertChannel.WEBHOOK,
                recipient=rule.webhook_url,
            )
        )
    if not deliveries:
        return
    AlertDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
    pending = list(
        AlertDelivery.objects.filter(
            alert=alert, transition=transition, sent_at__isnull=True
        ).values_list("pk", flat=True)
    )
    transaction.on_commit(lambda: _enqueue_deliveries(pending))


def _enqueue_deliveries(delivery_ids: list[int]) -> int:
    """Hand each delivery to the broker once: claimed first by a conditional UPDATE (its
    transition's hand-over right after the commit and a later evaluation's requeue may
    reach for the same one; only one gets it), released when the broker refuses it. How
    many were handed over."""
    from celery import current_app

    handed = 0
    for delivery_id in delivery_ids:
        claimed_at = timezone.now()
        unclaimed = AlertDelivery.objects.filter(
            pk=delivery_id, sent_at__isnull=True, enqueued_at__isnull=True
        )
        if not unclaimed.update(enqueued_at=claimed_at):
            continue  # sent, or handed over by someone else
        try:
            current_app.send_task(DELIVER_TASK, args=(delivery_id,), queue=ALERTS_QUEUE)
        except Exception:
            AlertDelivery.objects.filter(pk=delivery_id, enqueued_at=claimed_at).update(
                enqueued_at=None
            )
            # The others would wait as long for the same answer: they stay unclaimed, and
            # the next evaluation hands them over (alert_deliveries_requeue).
            logger.exception("taskboard: alert delivery %s could not be enqueued", delivery_id)
            break
        handed += 1
    return handed


def alert_deliveries_requeue(
    *, now: datetime, older_than: timedelta = REQUEUE_AFTER, limit: int = REQUEUE_BATCH
) -> int:
    """Hand to the broker the deliveries never handed over (the broker was down when their
    alert fired, or the process died before the hand-over), oldest first, at most `limit`;
    how many went. One handed over before is left alone: its task is queued, running, or
    retrying with backoff (or gave up, and says why in the admin)."""
    stranded = list(
        AlertDelivery.objects.filter(
            sent_at__isnull=True, enqueued_at__isnull=True, created_at__lt=now - older_than
        )
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    if not stranded:
        return 0
    handed = _enqueue_deliveries(stranded)
    logger.info("taskboard: %d of %d stranded alert deliveries enqueued", handed, len(stranded))
    return handed


def alert_value(alert: Alert, transition: str) -> float | None:
    return alert.value if transition == AlertTransition.FIRED else alert.last_value


def value_text(*, kind: str, value: float | None) -> str:
    """The value an alert saw, in words of its kind."""
    if value is None:
        return ""
    if kind == AlertKind.LOST:
        count = round(value)
        return ngettext("%(count)d task lost", "%(count)d tasks lost", count) % {"count": count}
    if kind == AlertKind.QUEUE_LENGTH:
        count = round(value)
        return ngettext("%(count)d message waiting", "%(count)d messages waiting", count) % {
            "count": count
        }
    texts: dict[str, str] = {
        AlertKind.FAILURE_RATE: _("%(value).0f %% failed"),
        AlertKind.DURATION_P95: _("p95 %(value).1f s"),
        AlertKind.LONG_RUNNING: _("running %(value).1f × its usual p95"),
        AlertKind.BACKLOG_AGE: _("oldest queued task waiting %(value).0f s"),
        AlertKind.NO_WORKER: _("no worker for %(value).0f s"),
    }
    text = texts.get(kind)
    return text % {"value": value} if text else f"{value:g}"


def alert_text(*, rule: AlertRule, transition: str, value: float | None) -> str:
    """One line for the bell, the e-mail's subject and the webhook's text."""
    seen = value_text(kind=rule.kind, value=value)
    if transition == AlertTransition.RESOLVED:
        if not rule.enabled:
            # Said from the rule as it is when the message is written (the alert keeps no
            # reason): an alert resolves while its rule is enabled only by the condition.
            return _("Alert «%(rule)s» resolved: its rule was disabled") % {"rule": rule.name}
        return _("Alert «%(rule)s» resolved") % {"rule": rule.name}
    if seen:
        return _("Alert «%(rule)s» fired: %(value)s") % {"rule": rule.name, "value": seen}
    return _("Alert «%(rule)s» fired") % {"rule": rule.name}


def alerts_page_url() -> str:
    return f"{conf.SITE_URL}{reverse('taskboard:alerts')}"


# --- Sending one delivery ------------------------------------------------------------------


class WebhookRefused(Exception):
    """The webhook answered with a status outside 2xx."""


def alert_delivery_send(*, delivery_id: int) -> bool:
    """Send one delivery if it has not gone out yet; True when it went out now. A failure
    is recorded on it and raised (the Celery task retries with backoff)."""
    delivery = AlertDelivery.objects.select_related("alert__rule").filter(pk=delivery_id).first()
    if delivery is None or delivery.sent_at is not None:
        return False
    AlertDelivery.objects.filter(pk=delivery.pk).update(attempts=delivery.attempts + 1)
    try:
        if delivery.channel == AlertChannel.EMAIL:
            _send_email(delivery)
        else:
            _send_webhook(delivery)
    except Exception as exc:
        AlertDelivery.objects.filter(pk=delivery.pk).update(last_error=str(exc)[:500])
        raise
    sent = AlertDelivery.objects.filter(pk=delivery.pk, sent_at__isnull=True).update(
        sent_at=timezone.now(), last_error=""
    )
    return bool(sent)


def _send_email(delivery: AlertDelivery) -> None:
    alert, rule = delivery.alert, delivery.alert.rule
    subject = alert_text(
        rule=rule, transition=delivery.transition, value=alert_value(alert, delivery.transition)
    )
    lines = [
        subject,
        "",
        _("Severity: %(severity)s") % {"severity": rule.get_severity_display()},
        _("Module: %(module)s") % {"module": rule.module or _("every module")},
        _("Fired at: %(when)s") % {"when": alert.fired_at.isoformat(timespec="seconds")},
    ]
    if alert.resolved_at is not None:
        lines.append(
            _("Resolved at: %(when)s") % {"when": alert.resolved_at.isoformat(timespec="seconds")}
        )
    lines += ["", alerts_page_url()]
    send_mail(subject, "\n".join(lines), None, [delivery.recipient])


def webhook_body(delivery: AlertDelivery) -> dict[str, Any]:
    """The JSON the webhook receives: the alert's fields, or Slack/Mattermost's
    {"text": ...} when the rule asks for it."""
    alert, rule = delivery.alert, delivery.alert.rule
    value = alert_value(alert, delivery.transition)
    text = alert_text(rule=rule, transition=delivery.transition, value=value)
    if rule.webhook_format == WebhookFormat.SLACK:
        return {"text": f"{text} — {alerts_page_url()}"}
    return {
        "status": "resolved" if delivery.transition == AlertTransition.RESOLVED else "firing",
        "rule": rule.name,
        "kind": rule.kind,
        "severity": rule.severity,
        "module": rule.module,
        "task_name": rule.task_name,
        "queue": rule.queue,
        "value": value,
        "fired_at": alert.fired_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "rule_enabled": rule.enabled,
        "text": text,
        "url": alerts_page_url(),
    }


def _send_webhook(delivery: AlertDelivery) -> None:
    body = json.dumps(webhook_body(delivery)).encode()
    request = urllib.request.Request(
        delivery.recipient,
        data=body,
        headers={"Content-Type": "application/json", "User-Agent": "taskboard-alerts"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=conf.ALERT_WEBHOOK_TIMEOUT) as response:  # noqa: S310
        if not 200 <= response.status < 300:
            raise WebhookRefused(f"HTTP {response.status}")


def silence_create(
    *, rule: AlertRule | None, ends_at: datetime, reason: str, by: Any
) -> AlertSilence:
    """A silence from now until ends_at (validated: it must end in the future)."""
    silence = AlertSilence(rule=rule, ends_at=ends_at, reason=reason, created_by=by)
    silence.full_clean()
    silence.save()
    return silence
