"""F6: secrets never stored, shown or logged — by name (Spanish and English, accents and
case folded) and inside values (IBAN, card numbers, bearer tokens, JWTs, `clave=...`).

The end-to-end tests run a real worker of their own (prefork, on its own queue) that also
loads the two tasks below, and read its log file."""

from __future__ import annotations

import json
from typing import Any

import pytest
from celery import shared_task
from django.test import override_settings

from taskboard.models import TaskExecution, TaskState
from taskboard.tracking import summaries
from taskboard.tracking.calls import call_record
from taskboard.utils import report_progress
from tests.factories import client_for, make_user
from tests.processes import wait_until

IBAN = "ES91 2100 0418 4502 0005 1332"  # a valid Spanish IBAN (mod-97)
CARD = "4111 1111 1111 1111"  # a Luhn-valid Visa test number
TOKEN = "tok-abc123xyz"
# Each secret as it would show in any form: spaced, compact, repr'd.
LEAKS = ("s3cr3t", "hunter2", "pw-42", TOKEN, "2100 0418", "21000418", "1111 1111", "41111111")
QUEUE = "redaction"
INCLUDE = "tests.worker_tasks,tests.external_app.facturacion,tests.tracking.test_redaction"


@shared_task
def pagar_nomina(cuenta: str, **credenciales: Any) -> dict[str, Any]:
    report_progress(1, 2, f"pagando a {cuenta}")
    return {"pagado_a": cuenta, "medio": f"tarjeta {CARD}", "referencia": "R-7"}


@shared_task
def rechazar_pago(cuenta: str, clave: str) -> None:
    raise PermissionError(
        f"banco rechazó clave={clave} para {cuenta}; Authorization: Bearer {TOKEN}"
    )


def leaks(text: str) -> list[str]:
    return [secret for secret in LEAKS if secret in text]


def stored(execution: TaskExecution) -> str:
    """Every text and JSON field of the row, as stored."""
    values = [getattr(execution, field.attname) for field in TaskExecution._meta.concrete_fields]
    return " ".join(json.dumps(v) if isinstance(v, dict | list) else str(v) for v in values)


# --- Names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "password", "passwd", "pwd", "PWD", "secret", "client_secret", "token", "api_key",
        "apiKey", "clave", "Clave", "contrasena", "contraseña", "Contraseña", "CONTRASEÑA",
        "pin", "user_pin", "userPin", "pin_code", "iban", "iban_destino", "tarjeta",
        "numero_tarjeta", "card", "card_number", "cardNumber", "creditCard", "cvv", "cvc",
        "Authorization", "nip", "otp",
    ],
)  # fmt: skip
def test_secret_names_in_spanish_and_english_are_redacted(name):
    text = summaries.kwargs_summary({name: "s3cr3t", "periodo": 7})
    assert "s3cr3t" not in text and '"[REDACTED]"' in text and '"periodo": 7' in text


@pytest.mark.parametrize(
    "name", ["spinner", "discard", "author", "secretaria_id", "passport", "periodo", "cardinal"]
)
def test_words_that_merely_contain_a_secret_word_are_kept(name):
    assert summaries.kwargs_summary({name: "visible"}) == f'{{"{name}": "visible"}}'


# --- Values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"transferencia a {IBAN} hecha",
        "transferencia a ES9121000418450200051332.",
        f"cuenta {IBAN} PAGADO",  # a word after it: the IBAN is still found
        f"pagada con {CARD}",
        "pagada con 4111-1111-1111-1111 el 2024-05-01",
        "4111111111111111",
        f"Authorization: Bearer {TOKEN}",
        f"bearer {TOKEN}",
        "login failed: clave=s3cr3t user=ana",
        "{'contraseña': 's3cr3t', 'usuario': 'ana'}",
        '{"pwd": "s3cr3t"}',
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzM2NyM3QifQ.s3cr3tsig",
    ],
)
def test_secrets_inside_values_are_redacted(text):
    redacted = summaries.redact_text(text)
    assert summaries.REDACTED in redacted and not leaks(redacted) and "s3cr3t" not in redacted


@pytest.mark.parametrize(
    "text",
    [
        "ES00 2100 0418 4502 0005 1332",  # fails the mod-97 check
        "4111 1111 1111 1112",  # fails Luhn's
        "periodo 2024-05, 12 empleados, a las 10:30",
        "pedido 1234567890123",  # 13 digits, Luhn-invalid
        "usuario=ana importe=12.50",
    ],
)
def test_values_that_only_look_like_secrets_are_kept(text):
    assert summaries.redact_text(text) == text


def test_card_numbers_as_numbers_are_redacted_too():
    assert summaries.to_text({"n": 4111111111111111, "id": 4111111111111112}) == (
        '{"n": "[REDACTED]", "id": 4111111111111112}'
    )


def test_exception_messages_and_tracebacks_are_redacted():
    kind, message = summaries.exception_summary(ValueError(f"clave=s3cr3t para {IBAN}"))
    assert kind == "ValueError" and message == "clave=[REDACTED] para [REDACTED]"
    traceback = summaries.traceback_summary(
        f'  File "x.py", line 3, in pay\n    pay(pwd="hunter2")\nValueError: {CARD}\n'
    )
    assert not leaks(traceback) and 'File "x.py", line 3' in traceback


def test_the_project_adds_its_own_value_pattern_and_may_turn_checks_off():
    with override_settings(TASKBOARD_REDACT_VALUE_PATTERN=r"\b\d{8}[A-Z]\b"):  # a DNI
        assert summaries.redact_text("DNI 12345678Z") == "DNI [REDACTED]"
    with override_settings(TASKBOARD_REDACT_VALUES=False):
        assert summaries.redact_text(f"a {IBAN}") == f"a {IBAN}"
        assert summaries.kwargs_summary({"clave": "x"}) == '{"clave": "[REDACTED]"}'  # names


def test_a_call_holding_a_secret_is_not_kept_for_retry():
    """A kept call is published again as it is: redacted, it would retry with
    "[REDACTED]" as the account. So it is not kept, and the task cannot be retried."""
    assert call_record([IBAN], {}) is None
    assert call_record([], {"nota": f"Bearer {TOKEN}"}) is None
    assert call_record([], {"opciones": {"Contraseña": "x"}}) is None
    assert call_record([], {"clave": "x"}) is None
    assert call_record([{"n": 4111111111111111}], {}) is None
    assert call_record(["ana"], {"importe": 12}) == {"args": ["ana"], "kwargs": {"importe": 12}}


def test_the_log_filter_hides_results_and_redacts_errors_and_tracebacks():
    import logging
    import sys

    from taskboard.tracking.logformats import LOG_SUCCESS, RedactingFilter

    try:
        raise PermissionError(f"clave=s3cr3t para {IBAN}")
    except PermissionError:
        exc_info = sys.exc_info()
    context = {"name": "t", "id": "1", "runtime": 0.1, "return_value": {"cuenta": IBAN}}
    success = logging.LogRecord("celery.app.trace", logging.INFO, "", 0, LOG_SUCCESS, (), None)
    success.args = context  # as Celery logs it: a mapping
    failure = logging.LogRecord(
        "celery.app.trace", logging.ERROR, "", 0, "Task %s failed: %r", ("t", exc_info[1]), exc_info
    )
    for record in (success, failure):
        assert RedactingFilter().filter(record)
    assert logging.Formatter().format(success) == "Task t[1] succeeded in 0.1s"
    text = logging.Formatter().format(failure)
    assert "clave=[REDACTED]" in text and "Traceback" in text and leaks(text) == []


# --- End to end: publish, a real worker, the row, the page, the API, the worker's log -----


@pytest.fixture
def redaction_worker(spawn_worker):
    return spawn_worker(queues=(QUEUE,), concurrency=1, extra_args=("-I", INCLUDE))


def wait_final(task_id: str) -> TaskExecution:
    def final() -> TaskExecution | None:
        row = TaskExecution.objects.filter(task_id=task_id).first()
        return (
            row if row is not None and row.state in (TaskState.SUCCESS, TaskState.FAILURE) else None
        )

    found: TaskExecution = wait_until(final, timeout=30)
    return found


def test_secrets_reach_neither_row_nor_page_nor_api_nor_worker_log(redaction_worker):
    staff = make_user("jefa", staff=True)
    paid = pagar_nomina.apply_async(
        (IBAN,), {"clave": "s3cr3t", "Contraseña": "hunter2", "pwd": "pw-42"}, queue=QUEUE
    )
    refused = rechazar_pago.apply_async((IBAN, "s3cr3t"), queue=QUEUE)
    assert paid.get(timeout=30)["pagado_a"] == IBAN  # the task itself got everything
    success, failure = wait_final(paid.id), wait_final(refused.id)
    assert success.state == TaskState.SUCCESS and failure.state == TaskState.FAILURE

    # The row: no field holds a secret, and what is shown still says what happened.
    assert leaks(stored(success)) == [] and leaks(stored(failure)) == []
    assert '"clave": "[REDACTED]"' in success.kwargs_summary
    assert '"Contraseña": "[REDACTED]"' in success.kwargs_summary
    assert '"referencia": "R-7"' in success.result_summary
    assert failure.exception_message.startswith("banco rechazó clave=[REDACTED] para [REDACTED]")
    assert "PermissionError" in failure.traceback
    # Neither call is kept: a retry would run with "[REDACTED]" as the password.
    assert success.call is None and failure.call is None

    client = client_for(staff)
    for execution in (success, failure):
        page = client.get(f"/tasks/{execution.task_id}/")
        assert page.status_code == 200
        assert leaks(page.content.decode()) == []
    api = client.get("/api/tasks/executions/")
    assert api.status_code == 200 and paid.id in api.content.decode()
    assert leaks(api.content.decode()) == []
    retry = client.post(f"/tasks/{failure.task_id}/retry/")
    assert retry.status_code == 409  # not retried with redacted arguments
    assert TaskExecution.objects.count() == 2

    # The worker's own log: received and finished, never the result nor the secrets.
    def finished_log() -> str | None:
        text = redaction_worker.log()
        done = f"[{paid.id}] succeeded in" in text and f"[{refused.id}] raised" in text
        return text if done else None

    log: str = wait_until(finished_log, timeout=15)
    assert f"pagar_nomina[{paid.id}] received" in log
    assert leaks(log) == [], log[-3000:]
    assert "clave=[REDACTED]" in log  # the error is still told, redacted
