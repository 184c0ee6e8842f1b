"""The embeddable fragments ({% taskboard_tasks %}, {% taskboard_progress %}) and the nomina
page that embeds them."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template import Context, RequestContext, Template, TemplateSyntaxError
from django.test import Client, RequestFactory
from django.urls import reverse

from taskboard.models import TaskExecution, TaskState
from tests.factories import client_for, make_execution, make_history

HX = {"HX-Request": "true"}


def render(source: str, user, path: str = "/nomina/", **context) -> str:
    request = RequestFactory().get(path)
    request.user = user
    return Template("{% load taskboard %}" + source).render(RequestContext(request, context))


def test_task_list_polls_the_list_fragment_with_its_module(ana):
    html = render('{% taskboard_tasks module="nomina" %}', ana)
    assert 'id="task-list"' in html
    assert 'hx-get="/tasks/fragments/list/?module=nomina"' in html
    trigger = re.search(r'hx-trigger="([^"]*)"', html)
    assert trigger and trigger[1].startswith("every 5s")
    assert "taskboard:changed from:body" in trigger[1]
    assert 'hx-swap="morph:outerHTML"' in html


def test_task_list_shows_only_the_module_and_the_viewers_own(ana, other, staff):
    mine = make_execution(user=ana, module="nomina")
    theirs = make_execution(user=other, module="nomina")
    elsewhere = make_execution(user=ana, module="contabilidad")
    html = render('{% taskboard_tasks module="nomina" %}', ana)
    assert mine.task_id in html
    assert theirs.task_id not in html and elsewhere.task_id not in html
    everyone = render('{% taskboard_tasks module="nomina" %}', staff)
    assert mine.task_id in everyone and theirs.task_id in everyone
    assert elsewhere.task_id not in everyone


def test_task_list_for_anonymous_shows_nothing(ana):
    make_execution(user=ana, module="nomina", display_name="secreto")
    html = render('{% taskboard_tasks module="nomina" %}', AnonymousUser())
    assert "secreto" not in html


def test_task_list_filters_by_state_and_carries_it_in_the_polling_url(ana):
    failed = make_execution(user=ana, state=TaskState.FAILURE)
    done = make_execution(user=ana, state=TaskState.SUCCESS)
    html = render('{% taskboard_tasks module="nomina" state="FAILURE" %}', ana)
    assert failed.task_id in html and done.task_id not in html
    assert 'hx-get="/tasks/fragments/list/?module=nomina&amp;state=FAILURE"' in html
    # An unknown state is no filter at all, never an error.
    html = render('{% taskboard_tasks module="nomina" state="BOGUS" %}', ana)
    assert failed.task_id in html and done.task_id in html
    assert 'hx-get="/tasks/fragments/list/?module=nomina"' in html


def test_task_list_pages_by_per_page_and_keeps_it_when_polling(ana):
    rows = [make_execution(user=ana) for _ in range(5)]
    html = render('{% taskboard_tasks module="nomina" per_page=2 %}', ana)
    assert sum(row.task_id in html for row in rows) == 2
    assert 'hx-get="/tasks/fragments/list/?module=nomina&amp;per_page=2"' in html
    assert "per_page=2" in html.split('class="pagination"')[1]
    html = render('{% taskboard_tasks module="nomina" limit=3 %}', ana)
    assert sum(row.task_id in html for row in rows) == 3


def test_task_list_ignores_the_host_pages_query_string(ana):
    make_execution(user=ana, module="contabilidad")
    html = render(
        '{% taskboard_tasks module="nomina" %}', ana, path="/nomina/?module=contabilidad&page=9"
    )
    assert 'hx-get="/tasks/fragments/list/?module=nomina"' in html
    assert "page=9" not in html


def test_task_list_query_count_is_pinned(ana, staff, django_assert_max_num_queries):
    make_history([ana, staff], count=300)
    for user in (ana, staff):
        # the rows + the typical durations of the page's queued tasks (one query for all)
        with django_assert_max_num_queries(2):
            html = render('{% taskboard_tasks module="nomina" %}', user)
        assert html.count('<tr id="task-') == 25


def test_progress_of_a_running_task_polls_until_final(ana):
    running = make_execution(user=ana, state=TaskState.PROGRESS, progress=40)
    html = render("{% taskboard_progress task_id %}", ana, task_id=running.task_id)
    assert f'id="progress-{running.task_id}"' in html
    assert f'hx-get="/tasks/{running.task_id}/progress/"' in html
    assert 'aria-valuenow="40"' in html and "state-progress" in html


def test_progress_of_a_finished_task_does_not_poll(ana):
    done = make_execution(user=ana, state=TaskState.SUCCESS, progress=100)
    html = render("{% taskboard_progress task_id %}", ana, task_id=done.task_id)
    assert 'aria-valuenow="100"' in html and "state-success" in html
    assert "hx-get" not in html and "hx-trigger" not in html


def test_progress_is_not_shown_to_others_but_is_to_staff(ana, other, staff):
    execution = make_execution(user=ana, state=TaskState.PROGRESS, progress=10)
    for viewer in (other, AnonymousUser()):
        html = render("{% taskboard_progress task_id %}", viewer, task_id=execution.task_id)
        assert execution.task_id not in html and "aria-valuenow" not in html
        assert 'class="task-progress unavailable"' in html
    html = render("{% taskboard_progress task_id %}", staff, task_id=execution.task_id)
    assert 'aria-valuenow="10"' in html


def test_progress_of_an_unknown_task_says_not_available(ana):
    html = render('{% taskboard_progress "no-such-task" %}', ana)
    assert 'class="task-progress unavailable"' in html


def test_progress_escapes_what_it_shows(ana):
    execution = make_execution(user=ana, state=TaskState.PROGRESS, progress_message="<b>bold</b>")
    html = render("{% taskboard_progress task_id %}", ana, task_id=execution.task_id)
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html


def test_tags_need_the_request_in_the_context(ana):
    with pytest.raises(TemplateSyntaxError):
        Template('{% load taskboard %}{% taskboard_tasks module="nomina" %}').render(Context())


# --- The nomina page: the tags' first host -------------------------------------------------


def test_nomina_page_needs_log_in_and_embeds_the_module_list(client, ana):
    response = client.get(reverse("nomina:index"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    mine = make_execution(user=ana, module="nomina")
    page = client_for(ana).get(reverse("nomina:index"))
    html = page.content.decode()
    assert page.status_code == 200 and "<html" in html
    assert 'hx-get="/tasks/fragments/list/?module=nomina"' in html and mine.task_id in html
    assert 'id="launch-consolidar"' in html and 'id="launch-exportar"' in html
    assert 'hx-post="/nomina/lanzar/consolidar/"' in html


def test_nomina_launch_answers_htmx_with_the_tasks_progress(
    ana, django_capture_on_commit_callbacks
):
    url = reverse("nomina:launch", args=["consolidar"])
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(ana).post(url, {"periodo_id": "7", "empleados": "3"}, headers=HX)
    assert response.status_code == 200 and "<html" not in response.content.decode()
    assert json.loads(response["HX-Trigger"]) == {"taskboard:changed": {}}
    html = response.content.decode()
    assert 'class="launched-task" data-tarea="consolidar"' in html
    assert 'hx-post="/tasks/' in html and "hx-confirm" in html  # its own cancel button
    assert len(callbacks) == 1  # published only once the request's transaction commits


def test_nomina_launch_without_htmx_goes_back_to_the_page(ana, django_capture_on_commit_callbacks):
    url = reverse("nomina:launch", args=["exportar"])
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(ana).post(url, {"periodo_id": "7"})
    assert response.status_code == 302 and response["Location"] == reverse("nomina:index")
    assert len(callbacks) == 1


@pytest.mark.parametrize(
    "data",
    [
        {"periodo_id": "abc"},
        {"periodo_id": ""},
        {"periodo_id": "0"},
        {"periodo_id": "1.5"},
        {"periodo_id": "7", "empleados": "muchos"},
        {"periodo_id": "7", "empleados": "100000"},
    ],
)
def test_nomina_launch_rejects_bad_input_and_launches_nothing(
    ana, data, django_capture_on_commit_callbacks
):
    client = client_for(ana)
    url = reverse("nomina:launch", args=["consolidar"])
    with django_capture_on_commit_callbacks() as callbacks:
        fragment = client.post(url, data, headers=HX)
        page = client.post(url, data)
    assert fragment.status_code == 422 and page.status_code == 422
    assert 'role="alert"' in fragment.content.decode()
    assert "<html" not in fragment.content.decode() and "<html" in page.content.decode()
    assert 'role="alert"' in page.content.decode()
    assert callbacks == [] and not TaskExecution.objects.exists()


def test_nomina_launch_of_an_unknown_task_or_by_get_is_refused(ana):
    client = client_for(ana)
    assert (
        client.post(reverse("nomina:launch", args=["borrar"]), {"periodo_id": "1"}).status_code
        == 404
    )
    assert client.get(reverse("nomina:launch", args=["consolidar"])).status_code == 405


def test_nomina_page_query_count_is_pinned(ana, staff, django_assert_max_num_queries):
    make_history([ana, staff], count=300)
    for user in (ana, staff):
        client = client_for(user)
        # session + user + one page of rows (LazyPaginator: no COUNT) + the typical
        # durations of its queued tasks
        with django_assert_max_num_queries(4):
            assert client.get(reverse("nomina:index")).status_code == 200


def test_module_stats_shows_that_module_and_polls_its_own_panel(ana, staff):
    make_execution(user=ana, module="nomina", state=TaskState.SUCCESS)
    make_execution(user=ana, module="nomina", state=TaskState.FAILURE)
    make_execution(user=ana, module="contabilidad", state=TaskState.SUCCESS)
    html = render('{% taskboard_module_stats "nomina" %}', staff)
    assert 'id="stats-panel"' in html
    assert 'hx-get="/tasks/fragments/stats/?module=nomina"' in html
    assert "every 5s" in html and "taskboard:changed from:body" in html
    assert ">nomina<" in html and "contabilidad" not in html
    assert '<td class="num">2</td>' in html  # two nomina tasks in the last 24 hours


def test_module_stats_counts_only_the_viewers_own_tasks(ana, other):
    make_execution(user=ana, module="nomina", state=TaskState.SUCCESS)
    for _ in range(3):
        make_execution(user=other, module="nomina", state=TaskState.SUCCESS)
    html = render('{% taskboard_module_stats "nomina" %}', ana)
    assert '<td class="num">1</td>' in html and '<td class="num">3</td>' not in html


def test_stats_fragment_filters_by_module_when_asked(staff):
    make_execution(module="nomina", state=TaskState.SUCCESS)
    make_execution(module="contabilidad", state=TaskState.SUCCESS)
    client = Client()
    client.force_login(staff)
    html = client.get(reverse("taskboard:stats"), {"module": "nomina"}, headers=HX).content
    assert b"nomina" in html and b"contabilidad" not in html
    assert client.get(reverse("taskboard:stats"), {"module": "\x00x"}).status_code == 200
