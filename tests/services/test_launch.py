"""Task templates: parameters synced from @track_task, the pages, and launching one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from celery import signals
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse

from taskboard.models import TaskExecution, TaskState, TaskTemplate
from taskboard.services.launch import template_can_launch, template_launch
from taskboard.tracking import sync_templates
from tests import worker_tasks  # noqa: F401  (declares the "pruebas.informe" template)
from tests.factories import client_for, make_history, make_user
from tests.tracking.test_tracking import wait_for_state

HX = {"HX-Request": "true"}
KEY = "pruebas.informe"
LAUNCH_URL = reverse("taskboard:template_launch", args=[KEY])
VALID = {
    "titulo": "Mensual",
    "dia": "2026-11-30",
    "copias": "3",
    "escala": "2.5",
    "importe": "99.90",
    "urgente": "on",
    "etiquetas": '["x", "y"]',
    "opciones": '{"formato": "pdf"}',
    "desde": "2026-11-01T08:30",
}


@pytest.fixture
def informe(db: None) -> TaskTemplate:
    sync_templates()
    return TaskTemplate.objects.get(key=KEY)


@pytest.fixture
def member(informe: TaskTemplate) -> Any:
    """A user in the one group allowed to launch the "informe" template."""
    group = Group.objects.create(name="informes")
    informe.allowed_groups.add(group)
    user = make_user("mara")
    user.groups.add(group)
    return user


@pytest.fixture
def published() -> Iterator[list[str]]:
    """Every task name this process publishes while the test runs."""
    names: list[str] = []

    def record(sender: Any = None, **_: Any) -> None:
        names.append(str(sender))

    signals.before_task_publish.connect(record, weak=False, dispatch_uid="tests.published")
    yield names
    signals.before_task_publish.disconnect(dispatch_uid="tests.published")


def test_parameters_are_synced_from_the_signature(informe):
    assert informe.task_name == "tests.worker_tasks.informe"
    assert (informe.module, informe.display_name) == ("pruebas", "Informe de prueba")
    assert informe.description.startswith("A task of the test suite")
    assert informe.default_kwargs == {"copias": 2, "etiquetas": ["a"]}
    assert informe.parameters == [
        {"name": "titulo", "kind": "str", "required": True},
        {"name": "dia", "kind": "date", "required": True},
        {"name": "copias", "kind": "int", "required": False, "default": 1},
        {"name": "escala", "kind": "float", "required": False, "default": 1.5},
        {"name": "importe", "kind": "decimal", "required": False, "default": "10.25"},
        {"name": "urgente", "kind": "bool", "required": False, "default": False},
        {"name": "etiquetas", "kind": "list", "required": False, "nullable": True, "default": None},
        {"name": "opciones", "kind": "dict", "required": False, "nullable": True, "default": None},
        {"name": "desde", "kind": "datetime", "required": False, "nullable": True, "default": None},
        {"name": "user_id", "kind": "int", "required": False, "nullable": True, "default": None},
    ]
    nomina = TaskTemplate.objects.get(key="nomina.consolidar")
    assert [p["name"] for p in nomina.parameters] == ["periodo_id", "user_id", "empleados", "pausa"]


def test_admin_edits_survive_a_new_sync(informe):
    TaskTemplate.objects.filter(pk=informe.pk).update(
        description="Editada", default_kwargs={"copias": 9}, is_active=False, parameters=[]
    )
    sync_templates()
    informe.refresh_from_db()
    assert (informe.description, informe.default_kwargs, informe.is_active) == (
        "Editada",
        {"copias": 9},
        False,
    )
    assert len(informe.parameters) == 10  # the code's: synced again
    # Emptied by the admin: the code fills them in again.
    TaskTemplate.objects.filter(pk=informe.pk).update(description="", default_kwargs={})
    sync_templates()
    informe.refresh_from_db()
    assert informe.description.startswith("A task of the test suite")
    assert informe.default_kwargs == {"copias": 2, "etiquetas": ["a"]}


def test_group_member_launches_and_owns_the_task(worker, member, informe):
    response = client_for(member).post(LAUNCH_URL, VALID)
    assert response.status_code == 302
    task_id = response["Location"].rstrip("/").rsplit("/", 1)[-1]
    assert response["Location"] == reverse("taskboard:detail", args=[task_id])
    execution = wait_for_state(task_id, TaskState.SUCCESS)
    assert execution.user_id == member.pk
    assert execution.template_id == KEY
    assert (execution.module, execution.display_name) == ("pruebas", "Informe de prueba")
    assert execution.call is not None and execution.call["args"] == []
    received = json.loads(execution.result_summary)
    assert received == {
        "titulo": ["str", "Mensual"],
        "dia": ["date", "2026-11-30"],
        "copias": ["int", "3"],
        "escala": ["float", "2.5"],
        "importe": ["Decimal", "99.90"],
        "urgente": ["bool", "True"],
        "etiquetas": ["list", "['x', 'y']"],
        "opciones": ["dict", "{'formato': 'pdf'}"],
        "desde": ["datetime", received["desde"][1]],
        "user_id": ["int", str(member.pk)],  # the launcher, never asked in the form
    }
    assert received["desde"][1].startswith("2026-11-01 08:30:00")
    assert TaskExecution.objects.filter(template__key=KEY).count() == 1


def test_optional_fields_left_empty_take_the_tasks_defaults(worker, staff, informe):
    client = client_for(staff)
    response = client.post(LAUNCH_URL, {"titulo": "Corto", "dia": "2026-01-02"}, headers=HX)
    assert response.status_code == 200
    task_id = response["HX-Redirect"].rstrip("/").rsplit("/", 1)[-1]
    execution = wait_for_state(task_id, TaskState.SUCCESS)
    assert execution.user_id == staff.pk
    received = json.loads(execution.result_summary)
    assert received["copias"] == ["int", "1"] and received["importe"] == ["Decimal", "10.25"]
    assert received["urgente"] == ["bool", "False"]
    assert received["etiquetas"] == ["NoneType", "None"]


def test_invalid_kwargs_give_field_errors_and_enqueue_nothing(staff, informe, published):
    client = client_for(staff)
    before = TaskExecution.objects.count()
    invalid = {
        **VALID,
        "titulo": "",
        "dia": "30 de febrero",
        "copias": "tres",
        "etiquetas": '{"no": "lista"}',
        "opciones": "{roto",
    }
    for headers in ({}, HX):
        response = client.post(LAUNCH_URL, invalid, headers=headers)
        assert response.status_code == 422
        html = response.content.decode()
        assert ("<html" in html) is (headers == {})
        for name in ("titulo", "dia", "copias", "etiquetas", "opciones"):
            assert f'data-field="{name}"' in html
            assert f'<div class="field invalid" data-field="{name}">' in html, name
        for name in ("escala", "importe", "desde"):
            assert f'<div class="field" data-field="{name}">' in html, name
        assert 'value="2.5"' in html  # what was typed is kept
    assert TaskExecution.objects.count() == before
    assert published == []


def test_service_checks_kwargs_against_the_template(staff, informe, published):
    bad: list[dict[str, Any]] = [
        {"titulo": "x"},  # dia missing
        {"titulo": "x", "dia": "2026-01-01"},  # a string is not a date
        {"titulo": "x", "dia": None},
        {"titulo": 3, "dia": __import__("datetime").date(2026, 1, 1)},
        {"titulo": "x", "dia": __import__("datetime").date(2026, 1, 1), "nope": 1},
    ]
    for kwargs in bad:
        with pytest.raises(ValidationError):
            template_launch(template=informe, user=staff, kwargs=kwargs)
    assert published == [] and not TaskExecution.objects.exists()


def test_user_outside_the_allowed_groups_gets_403(ana, member, informe, published):
    client = client_for(ana)
    assert client.get(LAUNCH_URL).status_code == 403
    assert client.post(LAUNCH_URL, VALID).status_code == 403
    assert not template_can_launch(template=informe, user=ana)
    with pytest.raises(PermissionDenied):
        template_launch(template=informe, user=ana, kwargs={})
    assert published == [] and not TaskExecution.objects.exists()
    assert client_for(member).get(LAUNCH_URL).status_code == 200


def test_inactive_or_unknown_templates_are_404(staff, informe):
    client = client_for(staff)
    informe.is_active = False
    informe.save()
    assert client.get(LAUNCH_URL).status_code == 404
    assert client.post(LAUNCH_URL, VALID).status_code == 404
    for key in ("no.such", "x" * 300, "a%00b"):
        assert client.get(f"/tasks/templates/{key}/launch/").status_code == 404


def test_anonymous_and_csrf(informe, staff, published):
    assert Client().get(LAUNCH_URL).status_code == 302
    assert Client().get(reverse("taskboard:templates")).status_code == 302
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff)
    assert strict.post(LAUNCH_URL, VALID).status_code == 403
    assert published == [] and not TaskExecution.objects.exists()
    assert client_for(staff).put(LAUNCH_URL).status_code == 405


def test_form_initial_values_come_from_default_kwargs(member, informe):
    html = client_for(member).get(LAUNCH_URL).content.decode()
    assert 'name="copias" value="2"' in html  # default_kwargs, over the signature's 1
    assert "[&quot;a&quot;]" in html  # etiquetas
    assert 'name="escala" value="1.5"' in html  # the signature's default
    assert 'name="user_id"' not in html  # the launcher owns the task
    assert 'type="date"' in html and 'type="datetime-local"' in html


def test_pages_list_what_each_user_may_launch(ana, member, staff, informe):
    templates_url = reverse("taskboard:templates")
    html = client_for(staff).get(templates_url).content.decode()
    for key in (KEY, "nomina.consolidar", "contabilidad.cerrar_periodo"):
        assert f'data-template="{key}"' in html
    assert html.index('data-module="contabilidad"') < html.index('data-module="nomina"')
    html = client_for(member).get(templates_url).content.decode()
    assert f'data-template="{KEY}"' in html and "nomina.consolidar" not in html
    html = client_for(ana).get(templates_url).content.decode()
    assert "data-template=" not in html and 'class="empty"' in html

    dashboard = reverse("taskboard:dashboard")
    link = f'href="{templates_url}"'
    assert link in client_for(member).get(dashboard).content.decode()
    assert link in client_for(staff).get(dashboard).content.decode()
    assert link not in client_for(ana).get(dashboard).content.decode()

    module_page = client_for(staff).get(reverse("taskboard:module", args=["pruebas"]))
    assert f'href="{LAUNCH_URL}"' in module_page.content.decode()
    nomina_page = client_for(staff).get(reverse("taskboard:module", args=["nomina"]))
    assert f'href="{LAUNCH_URL}"' not in nomina_page.content.decode()
    assert 'data-template="nomina.consolidar"' in nomina_page.content.decode()


def test_query_counts_are_pinned(ana, member, staff, informe, django_assert_max_num_queries):
    make_history([ana, member, staff], count=300)
    groups = [Group.objects.create(name=f"g{i}") for i in range(5)]
    member.groups.add(*groups)
    for index in range(200):
        template = TaskTemplate.objects.create(
            key=f"carga.t{index}",
            module=f"carga{index % 7}",
            display_name=f"Tarea {index}",
            task_name="tests.worker_tasks.add",
            parameters=[{"name": "x", "kind": "int", "required": True}],
        )
        template.allowed_groups.add(*groups[: index % 3 + 1])
    templates_url = reverse("taskboard:templates")
    for user in (member, staff):
        client = client_for(user)
        # session + user + the templates (groups in a subquery)
        with django_assert_max_num_queries(3):
            assert client.get(templates_url).status_code == 200
        # session + user + template + may launch it (non-staff)
        with django_assert_max_num_queries(4):
            assert client.get(LAUNCH_URL).status_code == 200
        with django_assert_max_num_queries(4):
            assert client.post(LAUNCH_URL, {"copias": "x"}).status_code == 422
    # The dashboard's launch link costs one EXISTS: session + user + rows + ETA durations +
    # template modules + stats (2) + may launch something + the headline counters (1).
    for user in (ana, member, staff):
        client = client_for(user)
        with django_assert_max_num_queries(9):
            assert client.get(reverse("taskboard:dashboard")).status_code == 200


def test_admin_manages_templates_with_read_only_parameters(informe):
    admin_user = make_user("admin-t", staff=True, is_superuser=True)
    client = client_for(admin_user)
    url = reverse("admin:taskboard_tasktemplate_change", args=[informe.pk])
    html = client.get(url).content.decode()
    assert 'id="id_allowed_groups_from"' in html or "selectfilter" in html  # filter_horizontal
    assert "<code>importe</code>: decimal" in html  # parameters, shown read-only
    assert 'name="parameters"' not in html and 'name="key"' not in html
    group = Group.objects.create(name="contables")
    data = {
        "display_name": informe.display_name,
        "module": informe.module,
        "task_name": informe.task_name,
        "is_active": "on",
        "description": "Nueva descripción",
        "default_kwargs": '{"nope": 1}',
        "allowed_groups": [str(group.pk)],
    }
    response = client.post(url, data)
    assert response.status_code == 200 and "nope" in response.content.decode()
    informe.refresh_from_db()
    assert informe.description != "Nueva descripción"
    response = client.post(url, {**data, "default_kwargs": '{"copias": 4}'})
    assert response.status_code == 302
    informe.refresh_from_db()
    assert (informe.description, informe.default_kwargs) == ("Nueva descripción", {"copias": 4})
    assert list(informe.allowed_groups.all()) == [group]
    assert len(informe.parameters) == 10
