"""F3: a task's detail page lists only the children its viewer may see, and counts the
others without describing them (no label, id or state of another user's task)."""

from __future__ import annotations

from django.urls import reverse

from taskboard.models import TaskState
from tests.factories import client_for, make_execution


def test_detail_lists_only_the_viewers_children(ana, other, staff):
    parent = make_execution(user=ana, state=TaskState.SUCCESS)
    mine = make_execution(
        user=ana, parent_task_id=parent.task_id, display_name="Hija de Ana", state=TaskState.SUCCESS
    )
    theirs = [
        make_execution(
            user=owner,
            parent_task_id=parent.task_id,
            display_name=f"Ajena secreta {index}",
            state=TaskState.FAILURE,
        )
        for index, owner in enumerate([other, other, None])
    ]
    url = reverse("taskboard:detail", args=[parent.task_id])
    client = client_for(ana)
    client.cookies["django_language"] = "en"
    response = client.get(url, headers={"Accept-Language": "en"})
    assert response.status_code == 200
    page = response.content.decode()
    assert mine.task_id in page and "Hija de Ana" in page
    for child in theirs:
        assert child.task_id not in page
    assert "Ajena secreta" not in page
    children = response.context["children"]
    assert [child.pk for child in children.shown] == [mine.pk]
    assert children.hidden == 3
    # Staff see every child, nothing hidden.
    staff_page = client_for(staff).get(url)
    assert [c.pk for c in staff_page.context["children"].shown] == [mine.pk] + [
        c.pk for c in theirs
    ]
    assert staff_page.context["children"].hidden == 0


def test_only_others_children_shows_just_the_count(ana, other):
    parent = make_execution(user=ana)
    make_execution(user=other, parent_task_id=parent.task_id, display_name="Ajena")
    response = client_for(ana).get(reverse("taskboard:detail", args=[parent.task_id]))
    assert response.status_code == 200
    assert "Ajena" not in response.content.decode()
    assert response.context["children"].shown == [] and response.context["children"].hidden == 1


def test_detail_query_count(ana, other, staff, django_assert_num_queries):
    parent = make_execution(user=ana)
    for index in range(60):
        make_execution(user=ana if index % 2 else other, parent_task_id=parent.task_id)
    url = reverse("taskboard:detail", args=[parent.task_id])
    # The user (the session comes from the cache), the execution, the children (shown and
    # the others counted, one query).
    client = client_for(ana)
    with django_assert_num_queries(3):
        response = client.get(url)
    assert len(response.context["children"].shown) == 30
    assert response.context["children"].hidden == 30
    client = client_for(staff)
    with django_assert_num_queries(3):
        response = client.get(url)
    assert len(response.context["children"].shown) == 50
