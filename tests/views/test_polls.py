"""Idle polls: a panel's own poll of an unchanged record is answered 204 with no body and no
render; any change to the record (the recorder's writes, a new row, a cancel) makes the
next poll render the new rows (views/polls.py, tracking/stamps.py)."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from taskboard.models import TaskState
from taskboard.services.cancel import execution_cancel
from taskboard.tracking import stamps
from taskboard.tracking.recorder import Write, apply
from taskboard.tracking.stamps import HEADER
from taskboard.views import polls
from tests.factories import client_for, make_execution, make_history, make_user

LIST = "/tasks/fragments/list/"
STATS = "/tasks/fragments/stats/"
HEADLINE = "/tasks/fragments/headline/"
PANELS = [(LIST, "task-list"), (STATS, "stats-panel"), (HEADLINE, "headline")]


def poll(client, url: str, element: str, stamp: str | None = None):
    headers = {"HX-Request": "true", "HX-Trigger": element}
    if stamp is not None:
        headers[HEADER] = stamp
    return client.get(url, headers=headers)


def stamp_of(response) -> str:
    found = re.search(r'data-taskboard-stamp="([^"]+)"', response.content.decode())
    assert found, "the panel renders without its stamp"
    return found.group(1)


@pytest.fixture
def ana(db):
    user = make_user("ana")
    make_history([user], count=30)
    return user


@pytest.mark.parametrize(("url", "element"), PANELS)
def test_an_unchanged_poll_gets_no_body(ana, url, element, django_assert_num_queries):
    client = client_for(ana)
    stamp = stamp_of(poll(client, url, element))
    # The user only (the session is read from the cache): nothing read for the panel,
    # nothing rendered.
    with django_assert_num_queries(1):
        response = poll(client, url, element, stamp)
    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.parametrize(("url", "element"), PANELS)
def test_a_changed_record_renders_at_the_next_poll(ana, url, element):
    client = client_for(ana)
    stamp = stamp_of(poll(client, url, element))
    execution = make_execution(user=ana, state=TaskState.STARTED, display_name="Nueva nómina")
    response = poll(client, url, element, stamp)
    assert response.status_code == 200
    assert stamp_of(response) != stamp
    if url == LIST:
        assert f'id="task-{execution.task_id}"' in response.content.decode()


def test_the_recorders_write_changes_the_stamp(ana):
    client = client_for(ana)
    execution = make_execution(user=ana, state=TaskState.STARTED)
    stamp = stamp_of(poll(client, LIST, "task-list"))
    assert poll(client, LIST, "task-list", stamp).status_code == 204
    # A progress report, written as a worker's recorder writes it (plain SQL, no ORM save).
    assert apply(Write(("pk", execution.pk), TaskState.PROGRESS, {"progress": 64}))
    response = poll(client, LIST, "task-list", stamp)
    assert response.status_code == 200
    assert 'aria-valuenow="64"' in response.content.decode()


def test_a_cancel_changes_the_stamp(ana):
    client = client_for(ana)
    execution = make_execution(user=ana, state=TaskState.STARTED)
    stamp = stamp_of(poll(client, LIST, "task-list"))
    execution_cancel(execution=execution, by=ana)
    response = poll(client, LIST, "task-list", stamp)
    assert response.status_code == 200
    row = response.content.decode().split(f'id="task-{execution.task_id}"')[1].split("</tr>")[0]
    assert 'data-state="cancelling"' in row


def test_only_the_panels_own_poll_is_answered_204(ana):
    client = client_for(ana)
    stamp = stamp_of(poll(client, LIST, "task-list"))
    # A sort link inside the list asks for another view of it: always rendered.
    response = client.get(
        LIST,
        {"sort": "label"},
        headers={"HX-Request": "true", "HX-Trigger": "sort-label", HEADER: stamp},
    )
    assert response.status_code == 200
    # A stale or made-up stamp renders too.
    assert poll(client, LIST, "task-list", "nonsense-1").status_code == 200


def test_the_stamp_moves_with_time(ana):
    now = timezone.now().timestamp()
    first = stamps.stamp_current(now=now)
    assert first is not None
    assert stamps.stamp_current(now=now) == first
    # Relative times ("hace 3 minutos") are rendered again at least once a bucket.
    assert stamps.stamp_current(now=now + stamps.BUCKET_SECONDS) != first


def test_without_the_cache_every_poll_renders(ana):
    client = client_for(ana)
    stamps.cache_window.close()
    # A real Redis address nothing listens on: the stamp cannot be read, so no 204.
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    with override_settings(CACHES=unreachable):  # Django reconnects its caches on change
        response = poll(client, LIST, "task-list", "anything-1")
        assert response.status_code == 200
        assert 'data-taskboard-stamp="' not in response.content.decode()
    stamps.cache_window.close()


PULSE = "/tasks/fragments/pulse/"


def pulse(client, stamp: str | None = None):
    headers = {"HX-Request": "true", "HX-Trigger": "taskboard-pulse"}
    if stamp is not None:
        headers[HEADER] = stamp
    return client.get(PULSE, headers=headers)


def test_the_dashboard_has_one_pulse_and_its_first_beat_only_learns_the_workers(ana):
    client = client_for(ana)
    page = client.get("/tasks/").content.decode()
    assert page.count('data-taskboard-pulse hx-get="/tasks/fragments/pulse/"') == 1
    first = re.search(r'id="taskboard-pulse"[^>]*data-taskboard-stamp="([^"]+)"', page)
    assert first and first.group(1).endswith(".?")  # the workers panel loads by itself
    answer = pulse(client, first.group(1))
    assert answer.status_code == 200 and "HX-Trigger" not in answer  # nothing to refresh
    assert stamp_of(answer) != first.group(1)


def test_an_idle_pulse_is_204_with_no_query(ana, django_assert_num_queries):
    client = client_for(ana)
    stamp = stamp_of(pulse(client))
    # The workers snapshot is fetched once, then cached (a loaded machine may first answer
    # "being looked up", a digest of its own): beat until the stamp holds.
    deadline = time.monotonic() + 10
    while (answer := pulse(client, stamp)).status_code != 204 and time.monotonic() < deadline:
        stamp = stamp_of(answer)
    with django_assert_num_queries(0):  # the session and the viewer come from the cache
        answer = pulse(client, stamp)
    assert answer.status_code == 204 and answer.content == b""


def settled_pulse(client) -> str:
    """The stamp of a pulse that is answered 204 (the workers snapshot settled)."""
    stamp = stamp_of(pulse(client))
    deadline = time.monotonic() + 10
    while (answer := pulse(client, stamp)).status_code != 204 and time.monotonic() < deadline:
        stamp = stamp_of(answer)
    assert answer.status_code == 204
    return stamp


def test_a_deactivated_viewer_is_no_longer_answered_by_an_idle_pulse(ana):
    client = client_for(ana)
    stamp = settled_pulse(client)
    ana.is_active = False
    ana.save()
    answer = pulse(client, stamp)
    assert answer.status_code == 302 and "/login/" in answer["Location"]


def test_a_changed_password_ends_the_idle_pulses_of_the_old_session(ana):
    client = client_for(ana)
    stamp = settled_pulse(client)
    ana.set_password("another secret 1234")
    ana.save()
    assert pulse(client, stamp).status_code == 302


def test_a_viewer_changed_behind_the_orm_is_trusted_only_while_remembered(ana):
    client = client_for(ana)
    stamp = settled_pulse(client)
    get_user_model().objects.filter(pk=ana.pk).update(is_active=False)  # no signal
    assert pulse(client, stamp).status_code == 204  # unchanged, and nothing shown
    cache.delete(polls.VIEWER_KEY.format(ana.pk))  # as when VIEWER_SECONDS have passed
    assert pulse(client, stamp).status_code == 302


def test_a_logged_out_session_gets_the_login_page_not_a_204(ana):
    client = client_for(ana)
    stamp = settled_pulse(client)
    client.logout()
    assert pulse(client, stamp).status_code == 302


def test_a_change_makes_the_next_pulse_refresh_the_panels(ana):
    client = client_for(ana)
    stamp = stamp_of(pulse(client))
    assert pulse(client, stamp).status_code == 204
    make_execution(user=ana, state=TaskState.STARTED)
    answer = pulse(client, stamp)
    assert answer.status_code == 200
    assert answer["HX-Trigger"] == "taskboard:changed"
    assert stamp_of(answer) != stamp
    assert pulse(client, stamp_of(answer)).status_code == 204


def test_with_the_cache_unreadable_every_pulse_refreshes(ana, monkeypatch):
    client = client_for(ana)
    stamp = stamp_of(pulse(client))
    # As after a cache failure (for as long as the pulse takes): the stamp is unknown.
    monkeypatch.setattr(stamps.cache_window, "skipping", lambda: True)
    answer = pulse(client, stamp)
    assert answer.status_code == 200 and answer["HX-Trigger"] == "taskboard:changed"


def test_a_failed_viewer_read_skips_the_cache_for_the_stamp_too(ana, monkeypatch):
    """The viewer's and the stamp's reads share one skip window: a cache that failed the
    first is not asked for the second (a frozen Redis would cost each its timeout)."""
    client = client_for(ana)
    stamp = settled_pulse(client)
    asked: list[str] = []

    def refused(key: str, *args: object, **kwargs: object) -> object:
        asked.append(key)
        raise ConnectionError("refused")

    monkeypatch.setattr(cache, "get", refused)
    try:
        answer = pulse(client, stamp)
        assert stamps.cache_window.skipping()
    finally:
        stamps.cache_window.close()
    viewer = next(i for i, key in enumerate(asked) if key.endswith(polls.VIEWER_KEY.format(ana.pk)))
    assert not [key for key in asked[viewer:] if key.endswith(stamps.KEY)], asked
    assert answer.status_code == 200 and answer["HX-Trigger"] == "taskboard:changed"


@pytest.mark.parametrize(
    ("url", "queries"),
    [
        # each: the user (the session comes from the cache), then what the panel reads
        (LIST, 3),  # the page's rows, the typical durations of its queued rows
        (STATS, 3),  # the per-module aggregate and the running counts
        (HEADLINE, 2),  # one conditional aggregate
        ("/tasks/fragments/workers/", 1),  # the workers snapshot is in the cache
        ("/tasks/notifications/bell/", 2),  # the unread page with its count
    ],
)
def test_each_panels_render_makes_a_pinned_number_of_queries(
    ana, url, queries, django_assert_num_queries
):
    make_execution(user=ana, state=TaskState.PENDING)  # a queued row: its estimate is read
    client = client_for(ana)
    client.get(url, headers={"HX-Request": "true"})  # warm: the workers snapshot, caches
    with django_assert_num_queries(queries):
        assert client.get(url, headers={"HX-Request": "true"}).status_code == 200
