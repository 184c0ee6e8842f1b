"""The task list at /tasks/: filters (state groups, since), the empty state's wording, sort
arrows, Clear filters, the address-bar links, the rows' cells and pinned query counts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from taskboard.models import TaskExecution, TaskState
from taskboard.selectors import executions
from tests.bulk_pages import confirmation
from tests.factories import client_for, make_execution, make_history, make_user

HX = {"HX-Request": "true"}
LIST = "/tasks/fragments/list/"
ON_DASHBOARD = {**HX, "HX-Current-URL": "http://testserver/tasks/"}
ENGLISH = {"Accept-Language": "en"}


def row_ids(html: str) -> set[str]:
    return set(re.findall(r'<tr id="task-([^"]+)" class="task">', html))


def listed(client, **params) -> set[str]:
    response = client.get(LIST, params)
    assert response.status_code == 200
    return row_ids(response.content.decode())


def test_state_groups_select_their_states(ana):
    by_state = {state: make_execution(user=ana, state=state).task_id for state in TaskState.values}
    client = client_for(ana)
    groups = {
        "running": {TaskState.STARTED, TaskState.PROGRESS},
        "queued": {TaskState.PENDING, TaskState.RECEIVED},
        "failed": {TaskState.FAILURE, TaskState.LOST},
    }
    for group, states in groups.items():
        assert listed(client, state=group) == {by_state[s] for s in states}, group
    assert listed(client, state="LOST") == {by_state[TaskState.LOST]}
    assert listed(client, state="nonsense") == set(by_state.values())


def test_since_keeps_tasks_created_within_the_window(ana):
    now = timezone.now()
    ages = {"10m": timedelta(minutes=10), "3h": timedelta(hours=3), "3d": timedelta(days=3)}
    ages["30d"] = timedelta(days=30)
    rows = {
        name: make_execution(user=ana, created_at=now - age).task_id for name, age in ages.items()
    }
    client = client_for(ana)
    assert listed(client, since="1h") == {rows["10m"]}
    assert listed(client, since="24h") == {rows["10m"], rows["3h"]}
    assert listed(client, since="7d") == {rows["10m"], rows["3h"], rows["3d"]}
    assert listed(client, since="") == set(rows.values())
    assert listed(client, since="5y") == set(rows.values())  # unknown: any time


def test_failed_in_the_last_day_as_the_headline_counter_links_it(ana):
    now = timezone.now()
    recent = make_execution(user=ana, state=TaskState.LOST, created_at=now - timedelta(hours=2))
    make_execution(user=ana, state=TaskState.FAILURE, created_at=now - timedelta(days=2))
    make_execution(user=ana, state=TaskState.SUCCESS, created_at=now - timedelta(hours=1))
    assert listed(client_for(ana), state="failed", since="24h") == {recent.task_id}


def test_bulk_all_matching_honours_groups_and_since(staff):
    now = timezone.now()
    other = make_user()
    for state in (TaskState.FAILURE, TaskState.LOST, TaskState.SUCCESS):
        make_execution(user=other, state=state, created_at=now - timedelta(hours=1))
    make_execution(user=other, state=TaskState.FAILURE, created_at=now - timedelta(days=3))
    client = client_for(staff)
    counts, fields = confirmation(
        client, action="delete", scope="filter", state="failed", since="24h"
    )
    assert counts["total"] == 2
    assert ("state", "failed") in fields and ("since", "24h") in fields
    # The list's bulk form carries the same filters to the confirmation.
    html = client.get(LIST, {"state": "failed", "since": "24h"}).content.decode()
    assert '<input type="hidden" name="state" value="failed">' in html
    assert '<input type="hidden" name="since" value="24h">' in html


def test_empty_list_names_the_active_filters_or_says_there_are_none(ana):
    client = client_for(ana)
    nothing = client.get(LIST, headers={**ON_DASHBOARD, **ENGLISH}).content.decode()
    assert "No tasks yet." in nothing and "filter-label" not in nothing
    assert "clear-filters" not in nothing
    filtered = client.get(
        LIST,
        {"module": "nomina", "q": "xyz", "state": "failed"},
        headers={**ON_DASHBOARD, **ENGLISH},
    ).content.decode()
    empty = re.search(r'<td colspan="\d+" class="empty">(.*?)</td>', filtered, re.S)
    assert empty, filtered
    labels = re.findall(r'<span class="filter-label">([^<]*)</span>', empty[1])
    assert labels == ["Module: nomina", "State: Failed or lost", "Search: xyz"]
    assert "No tasks yet." not in filtered and 'class="clear-filters"' in empty[1]


def test_active_filters_are_summed_up_with_a_clear_link_on_the_dashboard_only(ana):
    make_execution(user=ana, module="nomina")
    client = client_for(ana)
    page = client.get(reverse("taskboard:dashboard"), {"module": "nomina"}).content.decode()
    summary = re.search(r'<p class="active-filters">(.*?)</p>', page, re.S)
    assert summary and '<a href="/tasks/" class="clear-filters">' in summary[1]
    assert (
        'class="active-filters"' not in client.get(reverse("taskboard:dashboard")).content.decode()
    )
    # An embedded list (no dashboard behind it) is scoped by its tag, not filtered by a person.
    embedded = client.get(LIST, {"module": "nomina"}, headers=HX).content.decode()
    assert 'class="active-filters"' not in embedded and "hx-push-url" not in embedded


def test_sorted_column_has_aria_sort_and_an_arrow(ana):
    make_execution(user=ana)
    client = client_for(ana)
    html = client.get(LIST, {"sort": "-duration"}).content.decode()
    headers = re.findall(r'<th scope="col" class="col-(\w+)"([^>]*)>', html)
    sorted_ = [(name, attrs) for name, attrs in headers if "aria-sort" in attrs]
    assert sorted_ == [("duration", ' aria-sort="descending"')]
    assert html.count('class="sort-arrow"') == 1 and "▼" in html
    html = client.get(LIST, {"sort": "label"}).content.decode()
    assert 'class="col-label" aria-sort="ascending"' in html and "▲" in html
    unsorted = client.get(LIST).content.decode()
    assert "aria-sort" not in unsorted and "sort-arrow" not in unsorted
    # The sort a list shows rides along with the filter form (form=), so filtering keeps it.
    assert '<input type="hidden" name="sort" value="label" form="task-filters">' in html


def test_links_push_the_page_address_and_ask_for_the_fragment(ana):
    make_history([ana], count=30)
    client = client_for(ana)
    html = client.get(
        LIST, {"module": "nomina", "page": "1"}, headers=ON_DASHBOARD
    ).content.decode()
    # A sort link starts again at page 1 and keeps the filter.
    assert (
        'href="/tasks/?module=nomina&amp;sort=label"\n'
        '       hx-get="/tasks/fragments/list/?module=nomina&amp;sort=label"'
        ' hx-push-url="/tasks/?module=nomina&amp;sort=label"'
    ) in html
    assert 'hx-swap="morph:outerHTML"' in html
    as_page = client.get(reverse("taskboard:dashboard"), {"q": "Job", "page": "1"}, headers=HX)
    assert as_page["Vary"] and "HX-Request" in as_page["Vary"]
    body = as_page.content.decode()
    assert "<html" not in body and 'hx-push-url="/tasks/?q=Job&amp;page=2"' in body


def test_history_restore_gets_the_whole_page(ana):
    headers = {**HX, "HX-History-Restore-Request": "true"}
    response = client_for(ana).get(
        reverse("taskboard:dashboard"), {"state": "failed"}, headers=headers
    )
    html = response.content.decode()
    assert "<html" in html and '<option value="failed" selected>' in html


def test_filter_form_offers_groups_and_windows(ana):
    make_execution(user=ana)
    html = client_for(ana).get(reverse("taskboard:dashboard"), {"since": "7d"}).content.decode()
    form = re.search(r'<form method="get" action="/tasks/" class="filters".*?</form>', html, re.S)
    assert form
    for value in ("running", "queued", "failed", "LOST"):
        assert f'<option value="{value}"' in form[0]
    assert '<option value="7d" selected>' in form[0] and '<option value="1h">' in form[0]
    assert 'hx-push-url="true"' in form[0] and 'hx-replace-url="true"' in form[0]


def test_row_cells(ana, other):
    started = timezone.now() - timedelta(minutes=3)
    running = make_execution(
        user=ana,
        state=TaskState.PROGRESS,
        progress=40,
        progress_message="Employee 40",
        started_at=started,
        display_name="Payroll run",
    )
    quick = make_execution(user=ana, state=TaskState.SUCCESS, duration=0.354)
    instant = make_execution(user=ana, state=TaskState.SUCCESS, duration=0.0004)
    long = make_execution(user=ana, state=TaskState.FAILURE, duration=3725.0)
    theirs = make_execution(user=other, state=TaskState.PROGRESS)
    html = client_for(ana).get(LIST, headers=ENGLISH).content.decode()
    rows = dict(re.findall(r'<tr id="task-([^"]+)" class="task">(.*?)</tr>', html, re.S))
    assert theirs.task_id not in rows
    row = rows[running.task_id]
    assert f'<time datetime="{timezone.localtime(started).isoformat(timespec="seconds")}"' in row
    assert 'aria-label="Progress of Payroll run"' in row
    assert 'data-state="progress"' in row and 'aria-valuetext="40 % · In progress"' in row
    assert '<small class="progress-message">Employee 40</small>' in row
    assert re.search(
        r'<button type="button" class="cancel" hx-post="/tasks/[^"]+/cancel/"'
        r' hx-swap="none"',
        row,
    )
    assert "data-bulk-row" not in row  # not staff: no checkboxes
    assert '<td class="duration" data-label="Duration">0.35 s</td>' in rows[quick.task_id]
    assert '<td class="duration" data-label="Duration">&lt; 0.01 s</td>' in rows[instant.task_id]
    assert '<td class="duration" data-label="Duration">1 h 02 min</td>' in rows[long.task_id]
    assert 'data-state="failure"' in rows[long.task_id] and "cancel" not in rows[long.task_id]


def test_staff_rows_have_bulk_checkboxes(staff):
    execution = make_execution(user=staff)
    html = client_for(staff).get(LIST).content.decode()
    assert "data-bulk-all" in html
    assert f'<input type="checkbox" name="ids" value="{execution.pk}" data-bulk-row' in html


def test_deep_pages_past_the_end_say_so(ana):
    make_history([ana], count=30)
    client = client_for(ana)
    first = listed(client)
    assert len(first) == 25
    assert len(listed(client, page="2")) == 5
    for page in ("3", "999", "9" * 30):
        response = client.get(LIST, {"page": page})
        html = response.content.decode()
        assert response.status_code == 200
        assert listed(client, page=page) == set()  # no rows: not the first page in disguise
        assert 'class="empty-row past-end"' in html
        assert 'id="page-first"' in html and "page=1" in html
        assert 'class="pagination"' not in html
    assert len(listed(client, per_page="1000")) == 30  # clamped to 100


@pytest.mark.parametrize(
    "sort", ["", "label", "-label", "module", "-module", "started_at", "-started_at", "duration"]
)
def test_deep_pages_read_by_key_first_show_the_same_rows(staff, other, sort, monkeypatch):
    make_history([staff, other], count=60)
    client = client_for(staff)

    def pages() -> list[list[str]]:
        return [
            re.findall(
                r'<tr id="task-([^"]+)" class="task">',
                client.get(
                    LIST, {"sort": sort, "per_page": "7", "page": str(page)}
                ).content.decode(),
            )
            for page in range(1, 11)
        ]

    plain = pages()
    monkeypatch.setattr(executions, "DEEP_OFFSET", 7)  # from page 2 on
    with CaptureQueriesContext(connection) as queries:
        deep = pages()
    assert deep == plain and sum(map(len, deep)) == 60  # the same rows, in the same order
    assert any("IN (SELECT" in q["sql"] and "OFFSET" in q["sql"] for q in queries.captured_queries)


def test_list_fragment_query_count_is_exact(ana, staff, django_assert_num_queries):
    users = [ana, staff, make_user(), make_user()]
    make_history(users, count=300)
    for user in (ana, staff):
        client = client_for(user)
        client.get(LIST)  # warm: the session's first read and the web reconciliation
        # user (the session comes from the cache) + the page's rows (LazyPaginator: no
        # COUNT) + the typical durations of the page's queued tasks (one query for all of
        # them; none without any)
        for params, queries in (
            ({}, 3),
            ({"page": "2"}, 3),
            ({"state": "running", "sort": "label"}, 2),
            ({"state": "failed", "since": "7d", "sort": "-duration", "q": "Job"}, 2),
        ):
            with django_assert_num_queries(queries):
                assert client.get(LIST, params, headers=ON_DASHBOARD).status_code == 200
    assert TaskExecution.objects.count() == 300
