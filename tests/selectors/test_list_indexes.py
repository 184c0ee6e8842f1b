"""Every list action walks an index (issue 12): each sort link of the task list, both ways,
is read in index order with no sort step, on SQLite and PostgreSQL alike; on PostgreSQL the
search is served by the trigram index."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.test import RequestFactory

from taskboard.tables import task_table
from tests.factories import make_history, make_user


@pytest.fixture
def staff(db):
    user = make_user("jefa", staff=True)
    make_history([user, make_user()], count=60)
    return user


def plan_of(sql: str, params: Any) -> str:
    """The database's plan for sql, with sorting made as costly as it can be on PostgreSQL
    (so a plan that can walk an index does; one that cannot still sorts, and shows it)."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_sort = off")
            cursor.execute("SET LOCAL enable_incremental_sort = off")
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql, params)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


def sorts_without_a_sort_step(plan: str) -> bool:
    if connection.vendor == "postgresql":
        return "Sort" not in plan
    return "TEMP B-TREE" not in plan


def sortable_columns(staff) -> list[str]:
    request = RequestFactory().get("/tasks/fragments/list/")
    request.user = staff
    return [column.name for column in task_table(request).columns if column.orderable]


@pytest.mark.django_db(transaction=True)
def test_every_sort_link_walks_an_index(staff):
    columns = sortable_columns(staff)
    assert set(columns) == {"label", "module", "started_at", "duration"}
    for name in columns:
        for sort in (name, f"-{name}"):
            request = RequestFactory().get("/tasks/fragments/list/", {"sort": sort})
            request.user = staff
            table = task_table(request)
            sql, params = table.data.data[:25].query.sql_with_params()
            plan = plan_of(sql, params)
            assert sorts_without_a_sort_step(plan), f"?sort={sort} sorts the table:\n{plan}"


@pytest.mark.django_db(transaction=True)
def test_the_unsortable_columns_offer_no_sort_link(staff, client):
    client.force_login(staff)
    html = client.get("/tasks/fragments/list/", headers={"HX-Request": "true"}).content.decode()
    for name in ("label", "module", "started_at", "duration"):
        assert f"sort={name}" in html
    for name in ("user", "state", "progress"):
        assert f"sort={name}" not in html
        # and asking for it anyway is ignored, not an error
        assert client.get("/tasks/fragments/list/", {"sort": name}).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_search_uses_the_trigram_index_on_postgresql(staff):
    from taskboard.selectors.executions import execution_list_for

    rows = execution_list_for(viewer=staff, q="job 3")[:25]
    sql, params = rows.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            # SQLite has no trigram index: the search is a plain LIKE that still works.
            assert len(list(rows)) > 0
            return
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")  # leave it the bitmap scans
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "tb_exec_search_trgm" in plan, plan


@pytest.mark.django_db
def test_the_tracking_table_carries_no_index_nothing_uses():
    """Every index costs every tracking write: Django's LIKE index beside task_id's unique
    one is dropped (no lookup is a LIKE on task_id); the search index is PostgreSQL's."""
    with connection.cursor() as cursor:
        names = {
            index
            for index, info in connection.introspection.get_constraints(
                cursor, "taskboard_taskexecution"
            ).items()
            if info["index"]
        }
    assert not [name for name in names if name.endswith("_like")], names
    assert ("tb_exec_search_trgm" in names) == (connection.vendor == "postgresql")
    assert {"tb_exec_label", "tb_exec_started", "tb_exec_duration", "tb_exec_module_cover"} <= names


@pytest.mark.django_db(transaction=True)
def test_typical_durations_walk_the_success_index_alone(staff):
    """A queued row's typical duration: the latest successful runs of its task name, read
    from tb_exec_success_dur, which includes duration (index-only on PostgreSQL)."""
    from django.test.utils import CaptureQueriesContext

    from taskboard.models import TaskExecution, TaskState
    from taskboard.selectors.estimates import latest_success_durations

    succeeded = TaskExecution.objects.filter(state=TaskState.SUCCESS).order_by("task_name")
    names = sorted(set(succeeded.values_list("task_name", flat=True)))[:2]
    assert len(names) == 2
    with CaptureQueriesContext(connection) as queries:
        found = latest_success_durations(task_names=names, runs=3)
    assert set(found) == set(names) and all(1 <= len(v) <= 3 for v in found.values())
    assert len(queries) == 1
    if connection.vendor != "postgresql":
        return  # SQLite reads by primary key (it takes no LIMIT inside a UNION's parts)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + queries.captured_queries[0]["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert plan.count("Index Only Scan using tb_exec_success_dur") == len(names), plan
