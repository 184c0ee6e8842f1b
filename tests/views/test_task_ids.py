"""F2: any task id Celery can carry is safe. Code may pick its own ids ("/" included): no
stored id makes a page fail, and every id's own pages find its row."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse

from sgm.nomina.tasks import exportar_nominas
from taskboard.converters import id_from_url, id_to_url
from taskboard.models import TaskExecution, TaskNotification, TaskState
from tests.factories import client_for, make_execution
from tests.processes import wait_until

HX = {"HX-Request": "true"}

# What code may pass as task_id=: every kind that ever broke a link or a route.
HOSTILE_IDS = [
    "nomina/2026/03",
    "/leading",
    "trailing/",
    "//",
    "a%2Fb",
    "100%",
    "with space",
    "why?not",
    "hash#tag",
    "x" * 255,
    "ñandú-日本語-🙂",
    "tab\tnew\nline\x07bell\x1bescape\x7f",
    "..",
    ".",
    "~",
    "~2F",
    "a~b",
    "cancel",
    "bulk",
    "modules",
    "templates",
    "x/cancel",
    "notifications",
    "fragments/list",
    "<script>alert(1)</script>",
    "back\\slash",
]


@pytest.mark.parametrize("task_id", ["", *HOSTILE_IDS])
def test_converter_round_trips(task_id):
    segment = id_to_url(task_id)
    assert segment and "/" not in segment and segment not in (".", "..")
    assert id_from_url(segment) == task_id


def test_ordinary_ids_keep_their_urls():
    assert reverse("taskboard:detail", args=["3f1c-uuid"]) == "/tasks/3f1c-uuid/"
    # A "~" that escapes nothing, typed by hand, is itself.
    assert id_from_url("a~b") == "a~b"


def _rows(owner: Any) -> list[TaskExecution]:
    return [
        make_execution(
            task_id=task_id,
            user=owner,
            state=TaskState.FAILURE if index % 2 else TaskState.PROGRESS,
            display_name=f"Hostil {index}",
        )
        for index, task_id in enumerate(HOSTILE_IDS)
    ]


def test_every_listing_page_survives_hostile_ids(ana, staff):
    rows = _rows(ana)
    for row in rows[:5]:
        TaskNotification.objects.create(user=ana, execution=row, state=row.state)
    pages = [
        reverse("taskboard:dashboard"),
        reverse("taskboard:list"),
        reverse("taskboard:notifications"),
        reverse("taskboard:bell"),
        "/nomina/",
        "/api/tasks/executions/?limit=200",
        "/api/tasks/user-tasks/?limit=200",
    ]
    for viewer in (ana, staff):
        client = client_for(viewer)
        for url in pages:
            for headers in ({}, HX):
                response = client.get(url, headers=headers)
                assert response.status_code == 200, (viewer, url, response.status_code)
    # The list links each row to its own detail page, and that page is the row's.
    client = client_for(ana)
    body = client.get(reverse("taskboard:list")).content.decode()
    for row in rows[-10:]:  # the newest: on the first page
        assert reverse("taskboard:detail", args=[row.task_id]) in body.replace("&amp;", "&")
    api = client.get("/api/tasks/user-tasks/?limit=200").json()
    by_id = {item["task_id"]: item["url"] for item in api["results"]}
    assert set(by_id) == set(HOSTILE_IDS)
    for task_id, url in by_id.items():
        response = client.get(url)
        assert response.status_code == 200, (task_id, url)
        assert response.context["execution"].task_id == task_id


@pytest.mark.parametrize("task_id", HOSTILE_IDS)
def test_detail_progress_cancel_retry_find_the_right_row(ana, staff, task_id):
    # Decoys: the ids a mis-decoded URL would reach.
    for decoy in {task_id.split("/")[0] or "decoy0", task_id.replace("/", "%2F"), "x"}:
        if decoy != task_id and not TaskExecution.objects.filter(task_id=decoy).exists():
            make_execution(task_id=decoy, user=ana, state=TaskState.PROGRESS)
    row = make_execution(task_id=task_id, user=ana, state=TaskState.PROGRESS)
    client = client_for(ana)
    detail = client.get(reverse("taskboard:detail", args=[task_id]))
    assert detail.status_code == 200 and detail.context["execution"].pk == row.pk
    progress = client.get(reverse("taskboard:progress", args=[task_id]), headers=HX)
    assert progress.status_code == 200 and progress.context["execution"].pk == row.pk
    cancel = client.post(reverse("taskboard:cancel", args=[task_id]), headers=HX)
    assert cancel.status_code == 200
    assert TaskExecution.objects.get(pk=row.pk).cancel_requested_by_id == ana.pk
    assert not TaskExecution.objects.exclude(pk=row.pk).filter(cancel_requested_by=ana).exists()
    again = client_for(staff).post(reverse("taskboard_api:cancel", args=[task_id]))
    assert again.status_code in (200, 409), again.content
    # Retry: the row has no kept call, so it is refused, with a message, for that row.
    TaskExecution.objects.filter(pk=row.pk).update(state=TaskState.FAILURE)
    retry = client.post(reverse("taskboard:retry", args=[task_id]))
    assert retry.status_code == 409, retry.content


def test_an_unknown_hostile_id_is_a_404(ana):
    client = client_for(ana)
    for task_id in ("no/such", "y" * 300, "z" * 5000):
        assert client.get(reverse("taskboard:detail", args=[task_id])).status_code == 404
        assert client.post(reverse("taskboard:cancel", args=[task_id])).status_code == 404
        api = client.post(reverse("taskboard_api:cancel", args=[task_id]))
        assert api.status_code == 404 and "error" in api.json()


def test_workers_panel_lists_a_running_task_with_a_slash_id(worker, django_user_model):
    """A real worker runs a task whose id its code chose: nomina/<period>/<n>."""
    boss = django_user_model.objects.create_user("jefa", password="x-123456789", is_staff=True)
    task_id = "nomina/2026-03/export #1 ?ñ"
    exportar_nominas.apply_async((7,), {"paginas": 400, "pausa": 0.05}, task_id=task_id)
    wait_until(
        lambda: TaskExecution.objects.filter(task_id=task_id, state=TaskState.PROGRESS).exists(),
        30,
    )
    client = client_for(boss)
    link = reverse("taskboard:detail", args=[task_id])

    def listed() -> bool:
        response = client.get(reverse("taskboard:workers"), headers=HX)
        assert response.status_code == 200
        return link in response.content.decode()

    wait_until(listed, 30)
    for url in (reverse("taskboard:dashboard"), reverse("taskboard:list"), link):
        assert client.get(url).status_code == 200
    cancel = client.post(reverse("taskboard:cancel", args=[task_id]), headers=HX)
    assert cancel.status_code == 200
    assert json.loads(cancel["HX-Trigger"]) == {"taskboard:changed": {}}
    wait_until(lambda: TaskExecution.objects.get(task_id=task_id).state == TaskState.REVOKED, 20)


def test_reserved_words_are_the_first_segments_of_the_routes():
    from taskboard import urls
    from taskboard.converters import RESERVED

    firsts = {
        str(pattern.pattern).split("/")[0]
        for pattern in urls.urlpatterns
        if "/" in str(pattern.pattern) and not str(pattern.pattern).startswith("<")
    }
    assert firsts == RESERVED
