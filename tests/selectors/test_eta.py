"""Duration estimates: a running task's time left, a queued task's typical duration."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.template import Context, Template
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from taskboard.models import TaskState
from taskboard.selectors.estimates import (
    execution_estimate,
    execution_estimates,
    time_left,
    typical_durations,
)
from taskboard.tables import task_table
from taskboard.templatetags.taskboard_text import duration_text
from tests.factories import client_for, make_execution, make_history, make_user

HX = {"HX-Request": "true"}
NAME = "sgm.nomina.tasks.consolidar_nomina"


def successes(name: str, durations: list[float], *, start_minutes_ago: int = 0) -> None:
    """Successful runs of name, the first of durations the newest."""
    now = timezone.now()
    for index, duration in enumerate(durations):
        make_execution(
            task_name=name,
            state=TaskState.SUCCESS,
            duration=duration,
            created_at=now - timedelta(minutes=start_minutes_ago + index),
        )


def eta_of(html: str, task_id: str) -> tuple[str, int] | None:
    """(kind, seconds) of the ETA shown in the row of task_id (None: none shown)."""
    row = re.search(rf'<tr id="task-{re.escape(task_id)}".*?</tr>', html, re.S)
    assert row, f"no row for {task_id}"
    found = re.search(r'data-eta-kind="(\w+)" data-eta-seconds="(\d+)"', row.group(0))
    return (found.group(1), int(found.group(2))) if found else None


# --- The arithmetic -------------------------------------------------------------------------


def test_time_left_is_elapsed_times_what_is_left_over_what_is_done():
    assert time_left(progress=50, elapsed=60) == 60
    assert time_left(progress=25, elapsed=30) == 90
    assert time_left(progress=80, elapsed=100) == pytest.approx(25)
    assert time_left(progress=5, elapsed=10) == 190


def test_time_left_says_nothing_too_early_at_the_end_or_without_time(settings):
    assert time_left(progress=4, elapsed=10) is None  # below the default 5 %
    assert time_left(progress=0, elapsed=10) is None
    assert time_left(progress=100, elapsed=10) is None
    assert time_left(progress=50, elapsed=0) is None
    assert time_left(progress=50, elapsed=-3) is None  # a clock that went back
    settings.TASKBOARD_ETA_MIN_PROGRESS = 20
    assert time_left(progress=10, elapsed=10) is None
    assert time_left(progress=20, elapsed=10) == 40


def test_duration_text_rounds_for_people():
    with translation.override("en"):
        assert duration_text(0.4) == "< 1 s"  # never "0 s": it ran, briefly
        assert duration_text(0.6) == "1 s"
        assert duration_text(44.6) == "45 s"
        assert duration_text(59.4) == "59 s"
        assert duration_text(61) == "1 min"
        assert duration_text(185) == "3 min"
        assert duration_text(3599) == "1 h 00 min"
        assert duration_text(7500) == "2 h 05 min"


def test_running_task_estimate_comes_from_its_own_rate(db):
    now = timezone.now()
    running = make_execution(
        state=TaskState.PROGRESS, progress=40, started_at=now - timedelta(seconds=80)
    )
    estimate = execution_estimate(execution=running, now=now)
    assert estimate is not None and estimate.kind == "remaining"
    assert estimate.seconds == pytest.approx(120)
    assert estimate.finishes_at == now + timedelta(seconds=120)
    assert estimate.progress == 40 and estimate.elapsed == pytest.approx(80)


@pytest.mark.parametrize(
    "fields",
    [
        {"state": TaskState.PROGRESS, "progress": 2},  # too early to tell
        {"state": TaskState.PROGRESS, "progress": 40, "started_at": None},
        {"state": TaskState.SUCCESS, "progress": 100},
        {"state": TaskState.FAILURE, "progress": 40},
        {"state": TaskState.RETRY, "progress": 40},
        {"state": TaskState.PROGRESS, "progress": 40, "cancel_requested_at": timezone.now()},
    ],
)
def test_no_estimate_when_there_is_nothing_to_tell(db, fields):
    fields.setdefault("started_at", timezone.now() - timedelta(seconds=30))
    execution = make_execution(**fields)
    assert execution_estimate(execution=execution) is None


# --- Typical durations ------------------------------------------------------------------------


def test_typical_duration_is_the_p50_of_the_latest_successes_per_task_name(
    db, settings, django_assert_num_queries
):
    successes("sgm.a", [1.0, 2.0, 3.0, 10.0, 100.0])  # p50: 3
    successes("sgm.b", [7.0, 5.0])  # lower middle: 5
    make_execution(task_name="sgm.b", state=TaskState.FAILURE, duration=999.0)
    make_execution(task_name="sgm.b", state=TaskState.SUCCESS, duration=None)
    make_execution(task_name="sgm.c", state=TaskState.PROGRESS, duration=None)
    with django_assert_num_queries(1):
        found = typical_durations(task_names=["sgm.a", "sgm.b", "sgm.c", "sgm.none", ""])
    assert {name: (t.seconds, t.runs) for name, t in found.items()} == {
        "sgm.a": (3.0, 5),
        "sgm.b": (5.0, 2),
    }
    # Only the latest runs count: the newest three of sgm.a are 1, 2 and 3.
    settings.TASKBOARD_TYPICAL_DURATION_RUNS = 3
    assert typical_durations(task_names=["sgm.a"])["sgm.a"].seconds == 2.0
    with django_assert_num_queries(0):
        assert typical_durations(task_names=[]) == {}


def test_typical_duration_follows_the_newest_runs(db):
    successes("sgm.slow", [50.0] * 5)
    successes("sgm.slow", [1.0] * 200, start_minutes_ago=10)  # older, many
    assert typical_durations(task_names=["sgm.slow"])["sgm.slow"].seconds == 1.0
    assert typical_durations(task_names=["sgm.slow"])["sgm.slow"].runs == 100
    successes("sgm.slow", [50.0] * 96)  # now the latest 100 are mostly slow ones
    assert typical_durations(task_names=["sgm.slow"])["sgm.slow"].seconds == 50.0


def test_queued_tasks_get_their_task_names_typical_duration(db, django_assert_num_queries):
    successes(NAME, [30.0, 40.0, 50.0])
    successes("sgm.other", [5.0])
    queued = [
        make_execution(task_name=NAME, state=TaskState.PENDING),
        make_execution(task_name=NAME, state=TaskState.RECEIVED),
        make_execution(task_name="sgm.other", state=TaskState.PENDING),
        make_execution(task_name="sgm.never", state=TaskState.PENDING),
    ]
    with django_assert_num_queries(1):
        estimates = execution_estimates(executions=queued)
    kinds = [(e.kind, e.seconds, e.runs) if e else None for e in estimates.values()]
    assert kinds == [("typical", 40.0, 3), ("typical", 40.0, 3), ("typical", 5.0, 1), None]
    with django_assert_num_queries(0):  # remembered on the instances
        assert execution_estimate(execution=queued[0]) is estimates[queued[0].pk]


# --- Where it shows ---------------------------------------------------------------------------


def test_list_progress_fragment_and_detail_show_the_estimate(ana):
    now = timezone.now()
    successes(NAME, [42.0])
    running = make_execution(
        user=ana, state=TaskState.PROGRESS, progress=50, started_at=now - timedelta(seconds=60)
    )
    queued = make_execution(user=ana, task_name=NAME, state=TaskState.PENDING)
    early = make_execution(
        user=ana, state=TaskState.PROGRESS, progress=1, started_at=now - timedelta(seconds=60)
    )
    client = client_for(ana)
    html = client.get(reverse("taskboard:list"), headers={"Accept-Language": "en"}).content.decode()
    shown = eta_of(html, running.task_id)
    assert shown is not None and shown[0] == "remaining" and 55 <= shown[1] <= 65
    assert eta_of(html, queued.task_id) == ("typical", 42)
    assert eta_of(html, early.task_id) is None
    assert "about 1 min left" in html and "usually takes 42 s" in html

    fragment = client.get(reverse("taskboard:progress", args=[running.task_id]), headers=HX)
    assert b'data-eta-kind="remaining"' in fragment.content
    fragment = client.get(reverse("taskboard:progress", args=[queued.task_id]), headers=HX)
    assert b'data-eta-kind="typical" data-eta-seconds="42"' in fragment.content

    detail = client.get(
        reverse("taskboard:detail", args=[running.task_id]), headers={"Accept-Language": "en"}
    ).content.decode()
    assert 'class="eta-detail" data-eta-kind="remaining"' in detail
    assert "50 % done in 1 min" in detail
    detail = client.get(
        reverse("taskboard:detail", args=[queued.task_id]), headers={"Accept-Language": "en"}
    ).content.decode()
    assert 'class="eta-detail" data-eta-kind="typical"' in detail
    assert "the median of its last successful run" in detail
    assert (
        b"eta-detail" not in client.get(reverse("taskboard:detail", args=[early.task_id])).content
    )


def test_finished_tasks_show_no_estimate(ana):
    successes(NAME, [42.0])
    done = make_execution(user=ana, task_name=NAME, state=TaskState.SUCCESS, duration=3.0)
    client = client_for(ana)
    assert eta_of(client.get(reverse("taskboard:list")).content.decode(), done.task_id) is None
    final = client.get(reverse("taskboard:progress", args=[done.task_id]), headers=HX)
    assert final.status_code == 286 and b"data-eta" not in final.content
    assert b"eta-detail" not in client.get(reverse("taskboard:detail", args=[done.task_id])).content


def test_detail_page_asks_for_the_typical_duration_once(ana):
    successes(NAME, [42.0])
    queued = make_execution(user=ana, task_name=NAME, state=TaskState.PENDING)
    client = client_for(ana)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("taskboard:detail", args=[queued.task_id]))
    assert response.status_code == 200 and b'class="eta-detail"' in response.content
    sqls = [q["sql"] for q in queries.captured_queries]
    typical = [sql for sql in sqls if '"duration" IS NOT NULL' in sql and "LIMIT" in sql]
    assert len(typical) == 1  # the progress bar and the ETA panel share it


def _render_list(user: Any, path: str = "/tasks/fragments/list/") -> str:
    request = RequestFactory().get(path)
    request.user = user
    table = task_table(request)
    html = Template("{% load django_tables2 %}{% render_table table %}").render(
        Context({"table": table, "request": request, "user": user})
    )
    return html


def test_list_estimates_cost_one_query_per_page_with_hundreds_of_rows(
    ana, staff, django_assert_num_queries, django_assert_max_num_queries
):
    users = [ana, staff, make_user(), make_user()]
    make_history(users, count=300)  # every state, five task names per module, successes
    for user in (ana, staff):
        # the rows, and one query for the typical durations of every queued row's task
        with django_assert_num_queries(2):
            html = _render_list(user)
        assert html.count('<tr id="task-') == 25
        assert 'data-eta-kind="typical"' in html
    # No queued row on the page: no query for typical durations.
    with django_assert_num_queries(1):
        _render_list(staff, "/tasks/fragments/list/?state=SUCCESS")
    # The list fragment as the dashboard polls it: session, user, rows, typical durations,
    # the module names of the filter and whatever else the page's panels need.
    client = client_for(staff)
    with django_assert_max_num_queries(6):
        assert client.get(reverse("taskboard:list"), {"page": "2"}).status_code == 200
