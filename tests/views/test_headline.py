"""The headline counters on /tasks/: running, queued, failed or lost in 24 h, lost in 24 h;
each a link to the filtered list, scoped like the stats panel, one query."""

from __future__ import annotations

import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from taskboard.models import TaskState
from taskboard.selectors.stats import headline_counts
from tests.factories import client_for, make_execution, make_history, make_user

HX = {"HX-Request": "true"}
URL = reverse("taskboard:headline")


def counts(html: str) -> dict[str, int]:
    return {
        name: int(value)
        for name, value in re.findall(r'data-counter="(\w+)" data-count="(\d+)"', html)
    }


def make_rows(user, *, old_too: bool = True) -> None:
    """2 running, 3 queued, 2 failures and 1 lost recently; besides, what never counts."""
    long_ago = timezone.now() - timedelta(days=3)
    make_execution(user=user, state=TaskState.STARTED)
    make_execution(user=user, state=TaskState.PROGRESS, created_at=long_ago)  # still running
    make_execution(user=user, state=TaskState.PENDING)
    make_execution(user=user, state=TaskState.RECEIVED)
    make_execution(user=user, state=TaskState.PENDING, created_at=long_ago)
    make_execution(user=user, state=TaskState.FAILURE)
    make_execution(user=user, state=TaskState.LOST)
    make_execution(
        user=user, state=TaskState.FAILURE, created_at=timezone.now() - timedelta(hours=23)
    )
    if old_too:
        make_execution(user=user, state=TaskState.FAILURE, created_at=long_ago)
        make_execution(user=user, state=TaskState.LOST, created_at=long_ago)
    for state in (TaskState.SUCCESS, TaskState.REVOKED, TaskState.RETRY):
        make_execution(user=user, state=state)


def test_what_each_counter_counts(db, django_assert_num_queries):
    make_rows(make_user())
    with django_assert_num_queries(1):
        headline = headline_counts()
    assert (headline.running, headline.queued, headline.failed, headline.lost) == (2, 3, 3, 1)


def test_a_plain_user_counts_only_their_own_tasks(ana, other):
    make_rows(ana)
    make_rows(other)
    make_execution(user=None, state=TaskState.FAILURE)
    response = client_for(ana).get(URL, headers=HX)
    assert response.status_code == 200
    assert response.context["headline_mine_only"] is True
    assert counts(response.content.decode()) == {"running": 2, "queued": 3, "failed": 3, "lost": 1}


def test_staff_count_everyone(ana, other, staff):
    make_rows(ana)
    make_rows(other, old_too=False)
    make_execution(user=None, state=TaskState.FAILURE)
    response = client_for(staff).get(URL, headers=HX)
    assert response.context["headline_mine_only"] is False
    assert counts(response.content.decode()) == {"running": 4, "queued": 6, "failed": 7, "lost": 2}


def test_each_counter_links_to_the_filtered_list(ana):
    html = client_for(ana).get(URL, headers=HX).content.decode()
    dashboard = reverse("taskboard:dashboard")
    links = dict(re.findall(r'data-counter="(\w+)" data-count="\d+" href="([^"]+)"', html))
    assert links == {
        "running": f"{dashboard}?state=running",
        "queued": f"{dashboard}?state=queued",
        "failed": f"{dashboard}?state=failed&amp;since=24h",
        "lost": f"{dashboard}?state=LOST&amp;since=24h",
    }


def test_counters_that_need_attention_say_so(ana):
    html = client_for(ana).get(URL, headers=HX).content.decode()
    assert "alarm" not in html  # nothing failed
    make_execution(user=ana, state=TaskState.LOST)
    html = client_for(ana).get(URL, headers=HX).content.decode()
    assert 'id="headline-failed" class="counter alarm"' in html
    assert 'id="headline-lost" class="counter alarm"' in html


def test_the_fragment_polls_itself_with_a_morphing_swap(ana):
    for headers in ({}, HX):
        response = client_for(ana).get(URL, headers=headers)
        html = response.content.decode()
        assert response.status_code == 200 and "<html" not in html
        assert html.startswith('<div id="headline" class="headline"')
        assert f'hx-get="{URL}"' in html
        assert 'hx-trigger="every 5s, taskboard:changed from:body"' in html
        assert 'data-taskboard-hold="live" hx-swap="morph:outerHTML"' in html


def test_the_dashboard_renders_the_counters_under_its_heading(ana):
    make_execution(user=ana, state=TaskState.STARTED)
    html = client_for(ana).get(reverse("taskboard:dashboard")).content.decode()
    heading, after = html.split("</h1>", 1)
    assert after.lstrip().startswith('<div id="headline"')
    # Server-rendered on the first load: no extra request to fill it.
    assert "load, every 5s" not in after.split("</div>")[0]
    assert counts(after)["running"] == 1


def test_anonymous_is_sent_to_log_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_query_count_is_pinned(ana, staff, django_assert_num_queries):
    make_history([ana, staff, make_user()], count=300)
    for user in (ana, staff):
        client = client_for(user)
        # user (the session comes from the cache) + the one conditional aggregate
        with django_assert_num_queries(2):
            assert client.get(URL, headers=HX).status_code == 200
