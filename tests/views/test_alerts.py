"""The staff alerts page: rule states, firing alerts, history, silences; 403 for others."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from taskboard.models import Alert, AlertKind, AlertRule, AlertSilence
from tests.factories import client_for, make_user

pytestmark = pytest.mark.django_db

URL = "/tasks/alerts/"


def test_the_url_is_the_contract():
    assert reverse("taskboard:alerts") == URL


def test_anonymous_logs_in_and_non_staff_is_refused(client, ana):
    response = client.get(URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    refused = client_for(ana).get(URL)
    assert refused.status_code == 403
    assert client_for(ana).post(URL, {"ends_at": "2099-01-01T00:00"}).status_code == 403
    assert not AlertSilence.objects.exists()


def test_staff_sees_states_firing_and_history(staff, django_assert_num_queries):
    now = timezone.now()
    lost = AlertRule.objects.create(name="Perdidas", kind=AlertKind.LOST)
    slow = AlertRule.objects.create(
        name="Nómina lenta", kind=AlertKind.DURATION_P95, module="nomina", threshold=60
    )
    for index in range(30):
        AlertRule.objects.create(name=f"Regla {index}", kind=AlertKind.LOST, enabled=index % 2 == 0)
    Alert.objects.create(
        rule=slow,
        fired_at=now - timedelta(hours=2),
        value=75.5,
        resolved_at=now - timedelta(hours=1),
    )
    Alert.objects.create(rule=lost, fired_at=now - timedelta(minutes=5), value=3)
    AlertSilence.objects.create(rule=slow, ends_at=now + timedelta(hours=1), reason="despliegue")
    client = client_for(staff)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    # Session, user; rules, firing alerts, silences, the form's rules, history.
    with django_assert_num_queries(6):  # the session comes from the cache
        response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Firing now" in html and "Perdidas" in html and "Nómina lenta" in html
    assert "75.50" in html and "3.00" in html  # the values seen, in the history
    assert "despliegue" in html and "silenced" in html
    assert html.count('data-alert="') == 2 and html.count('data-rule="') == 32


def test_the_tables_are_drawn_as_the_dashboards_panels(staff):
    """The dashboard's table classes (taskboard.css), in the box that scrolls on a phone and
    by keyboard; states and severities as badges."""
    rule = AlertRule.objects.create(name="Perdidas", kind=AlertKind.LOST, severity="critical")
    Alert.objects.create(rule=rule, value=1)
    client = client_for(staff)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    html = client.get(URL).content.decode()
    assert '<table class="stats alert-rules">' in html
    assert '<table class="stats alert-history">' in html
    assert html.count('<div class="table-scroll" tabindex="0">') == 2
    assert '<th scope="col">Last evaluated</th>' in html and '<th scope="row">Perdidas</th>' in html
    assert '<span class="badge severity-critical">Critical</span>' in html
    assert html.count('<span class="badge alert-firing">Firing</span>') == 2  # rule, history


def test_without_rules_the_page_says_so(staff):
    client = client_for(staff)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    html = client.get(URL).content.decode()
    assert '<p class="empty">No rules yet: add them in the admin.</p>' in html
    assert '<p class="empty">No alert has fired yet.</p>' in html
    assert "<table" not in html
    spanish = client_for(staff).get(URL).content.decode()  # the site's default language
    assert '<p class="empty">Aún no hay reglas: añádalas' in spanish


def test_staff_silences_a_rule_until_a_time(staff):
    rule = AlertRule.objects.create(name="Perdidas", kind=AlertKind.LOST)
    ends = (timezone.localtime() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    response = client_for(staff).post(URL, {"rule": rule.pk, "ends_at": ends, "reason": "obras"})
    assert response.status_code == 302 and response["Location"] == URL
    silence = AlertSilence.objects.get()
    assert (silence.rule, silence.reason, silence.created_by) == (rule, "obras", staff)
    assert silence.ends_at > timezone.now() + timedelta(hours=1)


def test_a_silence_of_every_rule(staff):
    ends = (timezone.localtime() + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    assert client_for(staff).post(URL, {"ends_at": ends}).status_code == 302
    assert AlertSilence.objects.get().rule is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "This field is required."),
        ({"ends_at": "mañana"}, "Enter a valid date/time."),
        ({"ends_at": "2001-01-01T00:00"}, "A silence ends after it starts."),
        ({"ends_at": "2099-01-01T00:00", "rule": "999999"}, "Select a valid choice."),
    ],
)
def test_a_bad_silence_is_refused_with_a_message(staff, data, message):
    client = client_for(staff)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    response = client.post(URL, data)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not AlertSilence.objects.exists()


def test_the_dashboard_links_staff_to_the_alerts(staff, ana):
    assert f'href="{URL}"' in client_for(staff).get("/tasks/").content.decode()
    assert f'href="{URL}"' not in client_for(ana).get("/tasks/").content.decode()


def test_admin_lists_rules_alerts_silences_and_deliveries(staff):
    admin = make_user("raiz", staff=True, is_superuser=True)
    AlertRule.objects.create(name="Perdidas", kind=AlertKind.LOST)
    client = client_for(admin)
    for model in ("alertrule", "alert", "alertsilence", "alertdelivery"):
        assert client.get(f"/admin/taskboard/{model}/").status_code == 200
    assert client.get("/admin/taskboard/alertrule/add/").status_code == 200


def test_the_bell_shows_an_alert_to_its_recipients(staff, other):
    from taskboard.services.alerts import alert_fire

    rule = AlertRule.objects.create(name="Perdidas", kind=AlertKind.LOST)
    rule.users.add(staff)
    alert_fire(rule=rule, value=2, now=timezone.now(), silenced=False)
    bell = client_for(staff).get(reverse("taskboard:bell"), headers={"HX-Request": "true"})
    assert bell.status_code == 200 and "«Perdidas»" in bell.content.decode()
    assert 'data-unread="1"' in bell.content.decode()
    nothing = client_for(other).get(reverse("taskboard:bell"), headers={"HX-Request": "true"})
    assert "«Perdidas»" not in nothing.content.decode()
