"""F1 and F9: numeric template parameters have bounds, and every out-of-range, NaN,
infinite or non-ASCII-digit value is a field error (422, nothing enqueued), never a 500;
the payroll page's period is checked the same way."""

from __future__ import annotations

import decimal
import json
import math
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import translation

from sgm.nomina.tasks import MAX_EMPLEADOS, MAX_PAUSA, MAX_PERIODO
from taskboard.forms import TemplateLaunchForm
from taskboard.models import TaskExecution, TaskTemplate
from taskboard.services.launch import template_launch
from taskboard.tracking import sync_templates
from taskboard.tracking.parameters import check_bounds, describe, value_problem
from taskboard.tracking.registry import track_task
from tests.factories import client_for


def english_client(user: Any) -> Any:
    """A logged-in client whose pages are in English (the messages asserted here)."""
    client = client_for(user)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


CONSOLIDAR = "nomina.consolidar"
URL = reverse("taskboard:template_launch", args=[CONSOLIDAR])
FOUR_THOUSAND_DIGITS = "9" * 4000


@pytest.fixture
def consolidar(db: None) -> TaskTemplate:
    sync_templates()
    return TaskTemplate.objects.get(key=CONSOLIDAR)


@pytest.fixture(autouse=True)
def no_limits(settings) -> None:
    """The launch limits are tested in tests/services/test_limits.py."""
    settings.TASKBOARD_LAUNCHES_PER_MINUTE = 0
    settings.TASKBOARD_MAX_UNFINISHED_PER_STAFF = 0


def test_the_decorators_bounds_are_synced_with_the_parameters(consolidar):
    by_name = {p["name"]: p for p in consolidar.parameters}
    assert (by_name["empleados"]["min"], by_name["empleados"]["max"]) == (1, MAX_EMPLEADOS)
    assert (by_name["pausa"]["min"], by_name["pausa"]["max"]) == (0, MAX_PAUSA)
    assert (by_name["periodo_id"]["min"], by_name["periodo_id"]["max"]) == (1, MAX_PERIODO)
    assert "min" not in by_name["user_id"]
    conciliar = TaskTemplate.objects.get(key="contabilidad.conciliar_banco")
    assert {p["name"]: p.get("max") for p in conciliar.parameters}["fallos"] == 3


def test_the_form_shows_the_bounds(staff, consolidar):
    html = english_client(staff).get(URL).content.decode()
    assert 'name="empleados"' in html and f'max="{MAX_EMPLEADOS}"' in html and 'min="1"' in html


BAD = [
    ("empleados", "1000000000000"),  # the attack: a trillion employees
    ("empleados", "0"),
    ("empleados", "-1"),
    ("empleados", "1001"),
    ("empleados", "٣"),  # an Arabic-Indic three: int() takes it
    ("empleados", "1_000"),  # int() takes it
    ("empleados", "1.0"),
    ("empleados", "1e3"),
    ("empleados", FOUR_THOUSAND_DIGITS),
    ("empleados", "²"),
    ("pausa", "-1"),
    ("pausa", "1e308"),  # finite, far out of range
    ("pausa", "1e309"),  # overflows to infinity
    ("pausa", "nan"),
    ("pausa", "NaN"),
    ("pausa", "inf"),
    ("pausa", "-Infinity"),
    ("pausa", "1_0"),
    ("pausa", "٠.٥"),
    ("pausa", FOUR_THOUSAND_DIGITS),
    ("periodo_id", "-1"),
    ("periodo_id", "0"),
    ("periodo_id", FOUR_THOUSAND_DIGITS),
    ("periodo_id", "٣"),
    ("periodo_id", "1_000"),
]


@pytest.mark.parametrize(("field", "value"), BAD, ids=[f"{f}={v[:12]}" for f, v in BAD])
def test_out_of_range_nan_infinite_or_foreign_digits_are_field_errors(
    staff, consolidar, field, value
):
    data = {"periodo_id": "3", "empleados": "10", "pausa": "0.01", field: value}
    response = english_client(staff).post(URL, data)
    assert response.status_code == 422
    html = response.content.decode()
    # The error is on that field, with a message; the other fields are fine.
    field_html = html.split(f'data-field="{field}"', 1)[1].split('data-field="', 1)[0]
    assert "field-errors" in field_html
    assert html.count("field-errors") == 1
    assert not TaskExecution.objects.exists()


def test_the_messages_say_what_is_wanted(staff, consolidar):
    with translation.override("en"):
        _messages_say_what_is_wanted(consolidar)


def _messages_say_what_is_wanted(consolidar: TaskTemplate) -> None:
    form = TemplateLaunchForm(
        {"periodo_id": "3", "empleados": "1000000000000", "pausa": "nan"}, template=consolidar
    )
    assert not form.is_valid()
    assert form.errors["empleados"] == [
        f"Ensure this value is less than or equal to {MAX_EMPLEADOS}."
    ]
    assert form.errors["pausa"] == ["Enter a number using the digits 0-9 only, e.g. 2.5."]
    form = TemplateLaunchForm({"periodo_id": "٣", "pausa": "1e309"}, template=consolidar)
    assert not form.is_valid()
    assert form.errors["periodo_id"] == [
        "Enter a whole number using the digits 0-9 only (at most 18 of them)."
    ]
    assert form.errors["pausa"] == ["Enter a finite number."]


def test_values_within_the_bounds_launch(staff, consolidar):
    data = {"periodo_id": " 3 ", "empleados": "+1000", "pausa": "0"}
    response = english_client(staff).post(URL, data)
    assert response.status_code == 302
    call = TaskExecution.objects.get().call
    assert call is not None
    assert call["kwargs"] == {
        "periodo_id": 3,
        "empleados": 1000,
        "pausa": 0.0,
        "user_id": staff.pk,
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"periodo_id": 3, "empleados": 10**12}, "empleados"),
        ({"periodo_id": 3, "pausa": -1.0}, "pausa"),
        ({"periodo_id": 3, "pausa": 1e308}, "pausa"),
        ({"periodo_id": 3, "pausa": math.nan}, "pausa"),
        ({"periodo_id": 3, "pausa": math.inf}, "pausa"),
        ({"periodo_id": 10**40}, "periodo_id"),
        ({"periodo_id": -1}, "periodo_id"),
    ],
)
def test_the_service_checks_the_bounds_too(staff, consolidar, kwargs, field):
    """Code (or a future API) calling the service directly gets the same answer."""
    with pytest.raises(ValidationError) as error:
        template_launch(template=consolidar, user=staff, kwargs=kwargs)
    assert list(error.value.message_dict) == [field]
    assert not TaskExecution.objects.exists()


def test_value_problems():
    bounded = {"name": "n", "kind": "int", "min": 1, "max": 10}
    assert value_problem(bounded, 5) is None
    assert value_problem(bounded, 0) == "min"
    assert value_problem(bounded, 11) == "max"
    assert value_problem({"name": "n", "kind": "int"}, 2**63) == "finite"
    assert value_problem({"name": "x", "kind": "float"}, math.nan) == "finite"
    decimal_bounded = {"name": "d", "kind": "decimal", "min": 0, "max": 2.5}
    assert value_problem(decimal_bounded, decimal.Decimal("2.5")) is None
    assert value_problem(decimal_bounded, decimal.Decimal("2.51")) == "max"
    assert value_problem(decimal_bounded, decimal.Decimal("NaN")) == "finite"
    assert value_problem({"name": "n", "kind": "int", "min": None, "max": 3}, -(10**6)) is None


def test_malformed_bounds_are_refused_where_they_are_declared():
    malformed: list[Any] = [
        {"n": (5, 1)},
        {"n": (0, math.inf)},
        {"n": ("1", 2)},
        {"n": (1,)},
        {"n": (True, 2)},
    ]
    for bounds in malformed:
        with pytest.raises(ValueError):
            track_task("pruebas.malos_limites", "pruebas", bounds=bounds)
    assert check_bounds({"n": (None, 3)}) == {"n": (None, 3)}

    def task(n: int, texto: str = "") -> None: ...

    # Bounds on a parameter that is not numeric are not kept.
    described = {p["name"]: p for p in describe(task, bounds={"n": (1, 2), "texto": (1, 2)})}
    assert (described["n"]["min"], described["n"]["max"]) == (1, 2)
    assert "min" not in described["texto"]


# --- The payroll page (F9) -----------------------------------------------------------------

PERIODS = ["-1", "0", FOUR_THOUSAND_DIGITS, "٣", "1_000", "", "abc", "1.5", str(MAX_PERIODO + 1)]


@pytest.mark.parametrize("periodo_id", PERIODS, ids=[p[:12] or "empty" for p in PERIODS])
def test_consolidar_endpoint_refuses_bad_periods_with_a_400(ana, periodo_id):
    response = english_client(ana).post(
        reverse("nomina:launch_consolidation"), {"periodo_id": periodo_id}
    )
    assert response.status_code == 400
    assert "periodo_id must be a whole number" in json.loads(response.content)["error"]
    assert not TaskExecution.objects.exists()


@pytest.mark.parametrize("periodo_id", PERIODS, ids=[p[:12] or "empty" for p in PERIODS])
def test_payroll_launch_refuses_bad_periods_with_a_422(ana, periodo_id):
    client = english_client(ana)
    url = reverse("nomina:launch", args=["consolidar"])
    response = client.post(url, {"periodo_id": periodo_id}, headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert "The period must be a whole number" in response.content.decode()
    page = client.post(url, {"periodo_id": periodo_id, "empleados": "12"})
    assert page.status_code == 422 and 'value="12"' in page.content.decode()
    assert not TaskExecution.objects.exists()


@pytest.mark.parametrize("empleados", ["0", "1001", "٣", "1_000", FOUR_THOUSAND_DIGITS, "-5"])
def test_payroll_launch_refuses_bad_employee_counts(ana, empleados):
    url = reverse("nomina:launch", args=["consolidar"])
    response = english_client(ana).post(
        url, {"periodo_id": "3", "empleados": empleados}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 422
    assert "number of employees" in response.content.decode()
    assert not TaskExecution.objects.exists()
