from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from taskboard.models import TaskState
from taskboard.selectors.stats import module_stats, percentiles_in_sql
from taskboard.utils import get_module_stats, get_user_tasks
from tests.factories import make_execution, make_history, make_user


@pytest.fixture
def history(db):
    users = [make_user() for _ in range(4)]
    make_history(users, count=300)
    return users


def test_user_tasks_are_the_users_own_newest_first(history, django_assert_num_queries):
    user = history[0]
    with django_assert_num_queries(1):
        rows = list(get_user_tasks(user)[:50])
    assert rows and all(r.user_id == user.pk for r in rows)
    assert [r.created_at for r in rows] == sorted((r.created_at for r in rows), reverse=True)
    with django_assert_num_queries(1):
        names = [r.user and r.user.username for r in get_user_tasks(user, module="nomina")[:50]]
    assert set(names) == {user.username}


def test_user_tasks_filter_by_module(history):
    rows = list(get_user_tasks(history[1], module="contabilidad"))
    assert rows and {r.module for r in rows} == {"contabilidad"}


def test_anonymous_has_no_tasks(history):
    from django.contrib.auth.models import AnonymousUser

    assert list(get_user_tasks(AnonymousUser())) == []


def test_module_stats_counts_rates_and_durations(db, django_assert_num_queries):
    now = timezone.now()
    for duration in [1.0, 2.0, 3.0, 4.0, 10.0]:
        make_execution(module="contabilidad", state=TaskState.SUCCESS, duration=duration)
    for _ in range(3):
        make_execution(module="contabilidad", state=TaskState.FAILURE, duration=0.5)
    make_execution(module="contabilidad", state=TaskState.REVOKED)
    make_execution(module="contabilidad", state=TaskState.LOST)
    make_execution(module="contabilidad", state=TaskState.PROGRESS)
    make_execution(
        module="contabilidad", state=TaskState.STARTED, created_at=now - timedelta(days=30)
    )  # running for a month: still running
    make_execution(
        module="contabilidad",
        state=TaskState.SUCCESS,
        duration=99.0,
        created_at=now - timedelta(days=8),
    )  # outside the window
    make_execution(module="nomina", state=TaskState.FAILURE)  # another module

    # One aggregate (with the percentiles on PostgreSQL; SQLite reads the durations) and
    # the running count.
    with django_assert_num_queries(2 if percentiles_in_sql() else 3):
        stats = get_module_stats("contabilidad", days=7)
    assert stats.total == 11
    assert stats.counts[TaskState.SUCCESS] == 5
    assert stats.counts[TaskState.FAILURE] == 3
    assert stats.counts[TaskState.REVOKED] == 1
    assert stats.running == 2
    assert stats.success_rate == pytest.approx(5 / 9)
    assert stats.avg_duration == pytest.approx(4.0)
    assert stats.p50_duration == 3.0
    assert stats.p95_duration == 10.0
    assert stats.as_dict()["counts"]["SUCCESS"] == 5


def test_module_stats_of_an_empty_module(db):
    stats = module_stats(module="nadie")
    assert stats.total == 0 and stats.success_rate is None and stats.p95_duration is None


def test_module_stats_query_count_with_history(history, django_assert_num_queries):
    # One aggregate (with the percentiles on PostgreSQL; SQLite reads the durations) and
    # the running count.
    with django_assert_num_queries(2 if percentiles_in_sql() else 3):
        stats = get_module_stats("nomina", days=7)
    assert 90 <= stats.total <= 110
    assert stats.p95_duration is not None and stats.running > 0
