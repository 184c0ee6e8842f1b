"""Alert rules and silences validate themselves with messages per field."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone, translation

from taskboard.models import Alert, AlertKind, AlertRule, AlertSilence

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def in_english():
    """The messages are compared as written (the site's default language is Spanish)."""
    with translation.override("en"):
        yield


def errors_of(instance) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        instance.full_clean()
    return caught.value.message_dict


def test_rule_each_kind_names_what_it_misses():
    assert "threshold" in errors_of(AlertRule(name="a", kind=AlertKind.FAILURE_RATE))
    assert "factor" in errors_of(AlertRule(name="b", kind=AlertKind.LONG_RUNNING))
    missing = errors_of(AlertRule(name="c", kind=AlertKind.NO_WORKER))
    assert {"threshold", "queue"} <= set(missing)
    AlertRule(name="d", kind=AlertKind.LOST).full_clean()  # needs nothing else


def test_rule_ranges_and_webhook():
    rate = errors_of(AlertRule(name="a", kind=AlertKind.FAILURE_RATE, threshold=150))
    assert rate["threshold"] == ["A failure rate is a percentage: 0 to 100."]
    hook = errors_of(AlertRule(name="b", kind=AlertKind.LOST, notify_webhook=True))
    assert hook["webhook_url"] == ["The webhook channel needs a URL."]
    window = errors_of(AlertRule(name="c", kind=AlertKind.LOST, window=0))
    assert "window" in window


def test_silence_ends_after_it_starts():
    now = timezone.now()
    silence = AlertSilence(starts_at=now, ends_at=now - timedelta(minutes=1))
    assert errors_of(silence)["ends_at"] == ["A silence ends after it starts."]
    AlertSilence(starts_at=now, ends_at=now + timedelta(hours=1)).full_clean()


def test_one_open_alert_per_rule():
    rule = AlertRule.objects.create(name="lost", kind=AlertKind.LOST)
    Alert.objects.create(rule=rule)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(rule=rule)
    Alert.objects.filter(rule=rule).update(resolved_at=timezone.now())
    Alert.objects.create(rule=rule)  # the next firing
