"""F1, fair use: a plain user cannot tie up the workers. Launches over the user's limits are
refused (409 too many unfinished tasks, 429 too many launches) with a message, and no row
is made for them: template launch, retry, bulk retry and the payroll page."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from kombu import Queue

from taskboard.models import TaskExecution, TaskState, TaskTemplate
from taskboard.services import limits
from taskboard.services.bulk import executions_retry
from taskboard.services.launch import execution_retry
from taskboard.services.limits import LaunchRefused, launch_check
from taskboard.tracking import sync_templates
from tests.factories import client_for, make_execution, make_user
from tests.processes import start_redis


def english_client(user: Any) -> Any:
    """A logged-in client whose pages are in English (the messages asserted here)."""
    client = client_for(user)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


_minutes = itertools.count(random.randrange(10**7, 10**8) * 1000)
CONSOLIDAR = "nomina.consolidar"
EXPORTAR = "nomina.exportar"
ADD_CALL = {"args": [20, 22], "kwargs": {}}
NO_LIMITS = {
    "TASKBOARD_MAX_UNFINISHED_PER_USER": 0,
    "TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE": 0,
    "TASKBOARD_MAX_UNFINISHED_PER_STAFF": 0,
    "TASKBOARD_LAUNCHES_PER_MINUTE": 0,
}


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The rate limit's clock, held still (5 s into a minute) until a test moves it; a
    minute of its own for each test (user ids repeat on SQLite, and the counts are in the
    suite's shared Redis)."""
    moment = [60.0 * next(_minutes) + 5]
    monkeypatch.setattr(limits, "clock", lambda: moment[0])
    return moment


@pytest.fixture
def templates(db: None) -> dict[str, TaskTemplate]:
    sync_templates()
    return {t.key: t for t in TaskTemplate.objects.filter(key__in=[CONSOLIDAR, EXPORTAR])}


@pytest.fixture
def clerk(templates: dict[str, TaskTemplate]) -> Any:
    """A plain user allowed to launch the payroll templates."""
    group = Group.objects.create(name="nominas")
    for template in templates.values():
        template.allowed_groups.add(group)
    user = make_user()
    user.groups.add(group)
    return user


def launch_url(key: str) -> str:
    return reverse("taskboard:template_launch", args=[key])


def launches(client: Any, key: str, times: int, **data: str) -> list[Any]:
    return [client.post(launch_url(key), {"periodo_id": "7", **data}) for _ in range(times)]


def rows_of(user: Any) -> int:
    return TaskExecution.objects.filter(user=user).count()


# --- Template launch ----------------------------------------------------------------------


def test_100_launches_in_a_row_only_the_limit_is_accepted(clerk, settings, now):
    settings.TASKBOARD_LAUNCHES_PER_MINUTE = 0  # the unfinished limit alone
    settings.TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE = 2
    settings.TASKBOARD_MAX_UNFINISHED_PER_USER = 5
    responses = launches(english_client(clerk), EXPORTAR, 100)
    statuses = [r.status_code for r in responses]
    assert statuses[:2] == [302, 302]
    assert statuses[2:] == [409] * 98
    assert rows_of(clerk) == 2  # nothing made for the 98 refused
    refused = responses[-1]
    html = refused.content.decode()
    assert "2 unfinished tasks of this kind" in html
    assert 'id="launch-form"' in html and 'value="7"' in html  # the form again, filled in
    assert refused["Cache-Control"] == "no-store"


def test_a_plain_user_cannot_occupy_more_than_the_overall_limit(clerk, settings, now):
    settings.TASKBOARD_LAUNCHES_PER_MINUTE = 0
    settings.TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE = 2
    settings.TASKBOARD_MAX_UNFINISHED_PER_USER = 3
    client = english_client(clerk)
    assert [r.status_code for r in launches(client, CONSOLIDAR, 3)] == [302, 302, 409]
    assert [r.status_code for r in launches(client, EXPORTAR, 3)] == [302, 409, 409]
    assert rows_of(clerk) == 3
    assert "3 unfinished tasks" in launches(client, EXPORTAR, 1)[0].content.decode()
    # One finishes: there is room for one more, and only one.
    first = TaskExecution.objects.filter(user=clerk).earliest("pk")
    TaskExecution.objects.filter(pk=first.pk).update(state=TaskState.SUCCESS)
    assert [r.status_code for r in launches(client, EXPORTAR, 2)] == [302, 409]
    assert TaskExecution.objects.filter(user=clerk).active().count() == 3


def test_the_launch_rate_is_limited_per_minute_with_retry_after(clerk, settings, now):
    settings.TASKBOARD_MAX_UNFINISHED_PER_USER = 0
    settings.TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE = 0
    settings.TASKBOARD_LAUNCHES_PER_MINUTE = 10
    client = english_client(clerk)
    responses = launches(client, CONSOLIDAR, 100)
    statuses = [r.status_code for r in responses]
    assert statuses == [302] * 10 + [429] * 90
    assert rows_of(clerk) == 10
    assert responses[-1]["Retry-After"] == "55"  # 5 s into the minute
    assert "at most 10 a minute" in responses[-1].content.decode()
    # Another user has a rate of their own.
    neighbour = make_user()
    neighbour.groups.set(clerk.groups.all())
    assert launches(english_client(neighbour), CONSOLIDAR, 1)[0].status_code == 302
    # The next minute: launches again.
    now[0] += 60
    assert launches(client, CONSOLIDAR, 1)[0].status_code == 302


def test_htmx_gets_the_form_with_the_message(clerk, settings, now):
    settings.TASKBOARD_LAUNCHES_PER_MINUTE = 1
    client = english_client(clerk)
    launches(client, CONSOLIDAR, 1)
    response = client.post(
        launch_url(CONSOLIDAR),
        {"periodo_id": "8", "empleados": "12"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 429
    html = response.content.decode()
    assert "<html" not in html and 'id="launch-form"' in html
    assert 'value="8"' in html and 'value="12"' in html  # nothing typed is lost
    assert "Too many launches" in html


def test_staff_have_a_limit_of_their_own_and_no_rate(staff, templates, settings, now):
    settings.TASKBOARD_LAUNCHES_PER_MINUTE = 1
    settings.TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE = 1
    settings.TASKBOARD_MAX_UNFINISHED_PER_STAFF = 4
    statuses = [r.status_code for r in launches(english_client(staff), CONSOLIDAR, 6)]
    assert statuses == [302] * 4 + [409] * 2
    assert rows_of(staff) == 4


def test_the_check_is_one_query(clerk, settings, now, django_assert_num_queries):
    settings.TASKBOARD_MAX_UNFINISHED_PER_USER = 5
    for _ in range(3):
        make_execution(user=clerk, task_name="sgm.nomina.tasks.exportar_nominas")
    with django_assert_num_queries(1):
        launch_check(user=clerk, task_name="sgm.nomina.tasks.exportar_nominas")


# --- Retry, single and bulk ---------------------------------------------------------------


def failed_add(**fields: Any) -> TaskExecution:
    defaults = {"task_name": "tests.worker_tasks.add", "state": TaskState.FAILURE, "call": ADD_CALL}
    return make_execution(**{**defaults, **fields})


def test_a_retry_counts_against_the_limits(ana, settings, now):
    settings.TASKBOARD_LAUNCHES_PER_MINUTE = 0
    settings.TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE = 2
    old = [failed_add(user=ana) for _ in range(3)]
    client = english_client(ana)
    statuses = [client.post(reverse("taskboard:retry", args=[e.task_id])).status_code for e in old]
    assert statuses == [302, 302, 409]
    assert not TaskExecution.objects.filter(retry_of=old[2]).exists()
    with pytest.raises(LaunchRefused) as refused:
        execution_retry(execution=old[2], by=ana)
    assert refused.value.status == 409


def test_a_retry_counts_against_the_rate(ana, settings, now):
    settings.TASKBOARD_MAX_UNFINISHED_PER_USER = settings.TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE = 0
    settings.TASKBOARD_LAUNCHES_PER_MINUTE = 2
    old = [failed_add(user=ana) for _ in range(4)]
    client = english_client(ana)
    responses = [client.post(reverse("taskboard:retry", args=[e.task_id])) for e in old]
    assert [r.status_code for r in responses] == [302, 302, 429, 429]
    assert "Too many launches" in responses[-1].content.decode()
    assert TaskExecution.objects.filter(retry_of__isnull=False).count() == 2


def test_bulk_retry_stops_at_the_staff_limit(staff, settings):
    settings.TASKBOARD_MAX_UNFINISHED_PER_STAFF = 3
    settings.TASKBOARD_BULK_BATCH_SIZE = 2  # the room is read again each batch
    make_execution(user=staff, state=TaskState.PENDING)  # one already unfinished
    failed = [failed_add(user=make_user()) for _ in range(5)]
    rows = TaskExecution.objects.filter(pk__in=[e.pk for e in failed])
    result = executions_retry(rows=rows, by=staff)
    assert (result.done, result.refused, result.skipped) == (2, 3, 3)
    assert TaskExecution.objects.filter(user=staff).active().count() == 3


# --- The payroll page ---------------------------------------------------------------------


NOWHERE = "tbtest-limits-nowhere"


@pytest.fixture
def purge_queue():
    """The payroll views publish for real (to the suite's Redis): to a queue no worker
    consumes (the session's worker would otherwise run these long exports and hold up
    later tests), emptied afterwards."""
    from sgm.celery import app

    routes, router = app.conf.task_routes, app.amqp.router
    app.conf.task_routes = {"sgm.nomina.tasks.*": {"queue": NOWHERE}}
    app.amqp.flush_routes()
    app.amqp.router = app.amqp.Router()  # type: ignore[misc]  # Celery has a setter
    try:
        yield
    finally:
        app.conf.task_routes = routes
        app.amqp.router = router  # type: ignore[misc]
        app.amqp.flush_routes()
        with app.connection_for_write() as conn:
            Queue(NOWHERE)(conn.default_channel).purge()


@pytest.mark.django_db(transaction=True)  # each request commits: its publish runs in it
def test_payroll_page_launches_are_limited(ana, settings, now, purge_queue):
    settings.TASKBOARD_LAUNCHES_PER_MINUTE = 0
    settings.TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE = 2
    client = english_client(ana)
    url = reverse("nomina:launch", args=["exportar"])
    statuses = []
    for _ in range(5):
        statuses.append(client.post(url, {"periodo_id": "4"}).status_code)
    assert statuses[:2] == [302, 302] and statuses[2:] == [409] * 3
    assert rows_of(ana) == 2
    assert set(TaskExecution.objects.filter(user=ana).values_list("state", flat=True)) == {
        TaskState.PENDING
    }
    # The page again, its form filled in, with the message; htmx: the message alone.
    page = client.post(url, {"periodo_id": "4", "empleados": "9"})
    html = page.content.decode()
    assert page.status_code == 409 and "unfinished tasks of this kind" in html
    assert 'value="4"' in html and 'value="9"' in html
    fragment = client.post(url, {"periodo_id": "4"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 409 and "<html" not in fragment.content.decode()
    # The JSON endpoint answers {"error"} with the same status.
    json_url = reverse("nomina:launch_consolidation")
    assert [client.post(json_url, {"periodo_id": "4"}).status_code for _ in range(2)] == [202] * 2
    api = client.post(json_url, {"periodo_id": "4"})
    assert api.status_code == 409 and "unfinished" in json.loads(api.content)["error"]
    assert rows_of(ana) == 4


@pytest.mark.django_db(transaction=True)
def test_payroll_json_endpoint_rate_limited(ana, settings, now, purge_queue):
    settings.TASKBOARD_MAX_UNFINISHED_PER_USER = settings.TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE = 0
    settings.TASKBOARD_LAUNCHES_PER_MINUTE = 3
    client = english_client(ana)
    statuses = []
    for _ in range(6):
        response = client.post(reverse("nomina:launch_consolidation"), {"periodo_id": "2"})
        statuses.append(response.status_code)
    assert statuses == [202] * 3 + [429] * 3
    assert json.loads(response.content)["error"].startswith("Too many launches")
    assert response["Retry-After"] == "55"
    assert rows_of(ana) == 3


# --- The cache away -----------------------------------------------------------------------


def test_an_unreachable_cache_lets_launches_through_under_the_unfinished_limit(
    clerk, settings, tmp_path, monkeypatch
):
    """The rate is counted in the cache: when it is gone (its Redis killed) launching still
    works, never a 500, and the unfinished limit (in the database) still holds."""
    monkeypatch.delenv("TASKBOARD_TEST_REDIS_URL", raising=False)
    server = start_redis(tmp_path)  # a private one: this test kills it
    assert server.process is not None
    cache = {
        "rate": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": server.url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        },
    }
    try:
        settings.CACHES = {**settings.CACHES, **cache}
        settings.TASKBOARD_CACHE_ALIAS = "rate"
        settings.TASKBOARD_LAUNCHES_PER_MINUTE = 5
        settings.TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE = 2
        launch_check(user=clerk, task_name="x")  # counted while it answers
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        client = english_client(clerk)
        statuses = [r.status_code for r in launches(client, CONSOLIDAR, 4)]
        assert statuses == [302, 302, 409, 409]
        assert rows_of(clerk) == 2
    finally:
        server.stop()


# --- The limiter alone (injectable clock) -------------------------------------------------


def test_rate_window_counts_attempts_and_resets_each_minute(settings, now, db):
    settings.TASKBOARD_LAUNCHES_PER_MINUTE = 2
    user = make_user()
    user_pk = user.pk
    limits._take_launch(user_pk=user_pk)
    limits._take_launch(user_pk=user_pk)
    with pytest.raises(LaunchRefused) as refused:
        limits._take_launch(user_pk=user_pk)
    assert (refused.value.status, refused.value.retry_after) == (429, 55)
    now[0] += 54.5
    with pytest.raises(LaunchRefused) as refused:
        limits._take_launch(user_pk=user_pk)
    assert refused.value.retry_after == 1  # never "0 seconds"
    now[0] += 1
    limits._take_launch(user_pk=user_pk)  # a new minute


def test_limits_of_zero_are_no_limit(clerk, settings, now):
    for name, value in NO_LIMITS.items():
        setattr(settings, name, value)
    assert [r.status_code for r in launches(english_client(clerk), CONSOLIDAR, 15)] == [302] * 15
