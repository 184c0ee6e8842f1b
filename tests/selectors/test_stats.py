"""The per-module stats panel and the module page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from taskboard.models import TaskState, TaskTemplate
from taskboard.selectors.stats import (
    module_overview,
    module_recent_failures,
    percentiles_in_sql,
)
from tests.factories import client_for, make_execution, make_history, make_user

HX = {"HX-Request": "true"}


def module_url(module: str) -> str:
    return reverse("taskboard:module", args=[module])


def make_contabilidad(owner=None) -> None:
    """The dataset of tests/selectors/test_selectors.py: 5 successes (1, 2, 3, 4, 10 s), 3 failures,
    1 revoked, 1 lost, 1 in progress, 1 started a month ago, 1 success 8 days ago."""
    now = timezone.now()
    for duration in [1.0, 2.0, 3.0, 4.0, 10.0]:
        make_execution(
            user=owner, module="contabilidad", state=TaskState.SUCCESS, duration=duration
        )
    for _ in range(3):
        make_execution(user=owner, module="contabilidad", state=TaskState.FAILURE, duration=0.5)
    make_execution(user=owner, module="contabilidad", state=TaskState.REVOKED)
    make_execution(user=owner, module="contabilidad", state=TaskState.LOST)
    make_execution(user=owner, module="contabilidad", state=TaskState.PROGRESS)
    make_execution(
        user=owner,
        module="contabilidad",
        state=TaskState.STARTED,
        created_at=now - timedelta(days=30),
    )
    make_execution(
        user=owner,
        module="contabilidad",
        state=TaskState.SUCCESS,
        duration=99.0,
        created_at=now - timedelta(days=8),
    )


# Selectors


def test_module_overview_counts_rates_and_running(db, django_assert_num_queries):
    make_contabilidad()
    make_execution(module="nomina", state=TaskState.FAILURE)
    make_execution(
        module="nomina", state=TaskState.SUCCESS, created_at=timezone.now() - timedelta(days=2)
    )
    with django_assert_num_queries(2):
        rows = module_overview(days=1)
    by_module = {row.module: row for row in rows}
    assert [row.module for row in rows] == ["contabilidad", "nomina"]
    conta = by_module["contabilidad"]
    # In the window: 5 successes, 3 failures, revoked, lost, in progress; the month-old
    # started task counts as running but not in the total.
    assert (conta.total, conta.succeeded, conta.failed, conta.running) == (11, 5, 4, 2)
    assert conta.success_rate == pytest.approx(5 / 9)
    assert conta.success_percent == pytest.approx(500 / 9)
    nomina = by_module["nomina"]
    assert (nomina.total, nomina.succeeded, nomina.failed, nomina.running) == (1, 0, 1, 0)
    assert nomina.success_rate == 0
    assert {row.module: row.total for row in module_overview(days=7)}["nomina"] == 2


def test_module_overview_of_one_user(ana, other):
    make_execution(user=ana, module="nomina", state=TaskState.SUCCESS)
    make_execution(user=other, module="nomina", state=TaskState.FAILURE)
    make_execution(user=other, module="contabilidad", state=TaskState.PROGRESS)
    rows = module_overview(user=ana)
    assert [(r.module, r.total, r.succeeded, r.failed, r.running) for r in rows] == [
        ("nomina", 1, 1, 0, 0)
    ]


def test_module_recent_failures_newest_first(db, django_assert_num_queries):
    now = timezone.now()
    owner = make_user()
    old = make_execution(
        module="nomina", state=TaskState.FAILURE, user=owner, created_at=now - timedelta(hours=2)
    )
    lost = make_execution(module="nomina", state=TaskState.LOST, created_at=now)
    make_execution(module="nomina", state=TaskState.SUCCESS)
    make_execution(module="contabilidad", state=TaskState.FAILURE)
    with django_assert_num_queries(1):
        rows = list(module_recent_failures(module="nomina"))
        assert rows[1].user is not None and rows[1].user.username == owner.username
    assert [r.pk for r in rows] == [lost.pk, old.pk]
    assert len(module_recent_failures(module="nomina", limit=1)) == 1


# Views


def test_anonymous_is_sent_to_log_in(client, db):
    for url in (reverse("taskboard:stats"), module_url("nomina")):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_stats_fragment_is_a_fragment_with_or_without_htmx(staff):
    make_contabilidad()
    client = client_for(staff)
    for headers in ({}, HX):
        response = client.get(reverse("taskboard:stats"), headers=headers)
        html = response.content.decode()
        assert response.status_code == 200 and "<html" not in html
        assert html.startswith('<div id="stats-panel" class="panel stats"')
        assert f'hx-get="{reverse("taskboard:stats")}"' in html
        trigger = "every 5s, taskboard:changed from:body"
        assert f'hx-trigger="{trigger}" data-taskboard-hold="live"' in html
        assert 'hx-swap="morph:outerHTML"' in html
        assert f'href="{module_url("contabilidad")}"' in html


def test_dashboard_carries_the_stats_panel(ana):
    make_execution(user=ana, module="nomina", state=TaskState.SUCCESS)
    page = client_for(ana).get(reverse("taskboard:dashboard"))
    html = page.content.decode()
    assert 'id="stats-panel"' in html
    # Server-rendered on the first load (htmx only refreshes it).
    panel = html.split('id="stats-panel"')[1].split("</div>")[0]
    assert "load, every 5s" not in panel and "nomina" in panel


def test_non_staff_stats_panel_shows_only_own_tasks(ana, other):
    make_execution(user=ana, module="nomina", state=TaskState.SUCCESS)
    make_execution(user=ana, module="nomina", state=TaskState.FAILURE)
    for _ in range(5):
        make_execution(user=other, module="nomina", state=TaskState.SUCCESS)
    make_execution(user=other, module="facturacion", state=TaskState.SUCCESS)
    response = client_for(ana).get(reverse("taskboard:stats"), headers=HX)
    html = response.content.decode()
    assert response.context["stats_mine_only"] is True and 'class="scope"' in html
    assert "nomina" in html and "facturacion" not in html
    assert '<td class="num">2</td>' in html and '<td class="num">5</td>' not in html
    assert "50 %" in html
    assert module_url("nomina") not in html  # the module page is for staff


def test_staff_stats_panel_counts_everyone(ana, other, staff):
    make_execution(user=ana, module="nomina", state=TaskState.SUCCESS)
    make_execution(user=other, module="facturacion", state=TaskState.SUCCESS)
    response = client_for(staff).get(reverse("taskboard:stats"), headers=HX)
    html = response.content.decode()
    assert response.context["stats_mine_only"] is False
    assert "nomina" in html and "facturacion" in html


def test_stats_panel_empty_state(ana):
    html = client_for(ana).get(reverse("taskboard:stats"), headers=HX).content.decode()
    assert '<table class="stats">' not in html and 'class="empty"' in html


def test_module_page_permissions(ana, staff):
    make_execution(user=ana, module="nomina", state=TaskState.SUCCESS)
    response = client_for(ana).get(module_url("nomina"))
    assert response.status_code == 403 and response.content
    assert client_for(staff).get(module_url("nomina")).status_code == 200


def test_unknown_module_is_404(staff):
    client = client_for(staff)
    assert client.get(module_url("nadie")).status_code == 404
    assert client.get(module_url("x" * 65)).status_code == 404
    assert client.get(module_url("a\x00b")).status_code == 404
    TaskTemplate.objects.create(key="nadie.tarea", module="nadie", display_name="Tarea")
    response = client.get(module_url("nadie"))
    assert response.status_code == 200
    assert (
        'class="empty"' in response.content.decode()
        and '<svg class="chart"' not in response.content.decode()
    )


def test_module_page_numbers(staff):
    make_contabilidad()
    response = client_for(staff).get(module_url("contabilidad"))
    assert response.status_code == 200
    context = response.context
    day, week = (window["stats"] for window in context["windows"])
    assert week.total == 11 and day.total == 11
    assert week.counts[TaskState.SUCCESS] == 5 and week.counts[TaskState.FAILURE] == 3
    assert week.p50_duration == 3.0 and week.p95_duration == 10.0
    assert context["windows"][1]["success_percent"] == pytest.approx(500 / 9)
    assert context["running"] == 2
    assert len(context["failures"]) == 4  # 3 failures and the lost one
    html = response.content.decode()
    assert "55.6 %" in html or "55,6 %" in html
    assert "3.00 s" in html or "3,00 s" in html
    assert "10.00 s" in html or "10,00 s" in html
    assert '<svg class="chart outcomes"' in html and '<svg class="chart durations"' in html
    assert "<polyline" in html
    assert f'href="{reverse("taskboard:dashboard")}?module=contabilidad"' in html


def test_module_page_without_successes_has_no_durations_chart(staff):
    make_execution(module="nomina", state=TaskState.FAILURE, exception_message="boom")
    html = client_for(staff).get(module_url("nomina")).content.decode()
    assert '<svg class="chart durations"' not in html and "<polyline" not in html
    assert '<svg class="chart outcomes"' in html  # the failure has its bar
    assert 'class="empty"' in html and "boom" in html


def test_failure_messages_are_escaped(staff):
    payload = '<script>alert("x")</script>'
    failure = make_execution(
        module="nomina",
        state=TaskState.FAILURE,
        exception_type="<b>ValueError</b>",
        exception_message=payload,
        display_name="<img src=x onerror=alert(1)>",
    )
    html = client_for(staff).get(module_url("nomina")).content.decode()
    assert payload not in html and "<b>ValueError" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert f'href="{reverse("taskboard:detail", args=[failure.task_id])}"' in html


def test_module_name_is_escaped(staff):
    module = '<b onclick="x">m'
    make_execution(module=module, state=TaskState.SUCCESS, duration=1.0)
    client = client_for(staff)
    html = client.get(module_url(module)).content.decode()
    assert module not in html and "&lt;b onclick=&quot;x&quot;&gt;m" in html
    panel = client.get(reverse("taskboard:stats"), headers=HX).content.decode()
    assert module not in panel and "&lt;b onclick=&quot;x&quot;&gt;m" in panel


def test_query_counts_are_pinned(ana, staff, django_assert_max_num_queries):
    users = [ana, staff, make_user(), make_user()]
    make_history(users, count=300)
    for user in (ana, staff):
        client = client_for(user)
        # session + user + the window's aggregate per module + running per module
        with django_assert_max_num_queries(4):
            response = client.get(reverse("taskboard:stats"), headers=HX)
        assert response.status_code == 200
    # session + user + module exists (1) + both windows in one aggregate (1; SQLite reads
    # the durations for the percentiles: +1) + running now (1) + outcomes per hour (1)
    # + durations per day (1) + recent failures with their owners (1)
    # + the module's launchable templates (1). It was 14 with a query per percentile.
    client = client_for(staff)
    with django_assert_max_num_queries(9 if percentiles_in_sql() else 10):
        response = client.get(module_url("nomina"))
    assert response.status_code == 200 and "<polyline" in response.content.decode()
