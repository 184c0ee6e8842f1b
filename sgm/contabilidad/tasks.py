"""Accounting (contabilidad) tasks: a ledger close that fails on unbalanced entries, and a
bank reconciliation that retries when the bank is briefly unreachable."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from taskboard.utils import report_progress, track_task


class AsientosDescuadradosError(Exception):
    """Business error: the period cannot close while entries do not balance."""


# Not idempotent: a close posts the closing entries.
@shared_task(bind=True)
@track_task("contabilidad.cerrar_periodo", "contabilidad", "Cierre contable del periodo")
def cerrar_periodo(self: Any, periodo: str, user_id: int | None = None) -> dict[str, Any]:
    asientos = [("A-101", "1200.00", "1200.00"), ("A-102", "845.10", "719.70")]
    descuadrados = []
    for numero, (asiento, debe, haber) in enumerate(asientos, 1):
        report_progress(numero, len(asientos), f"Revisando asiento {asiento}")
        if debe != haber:
            descuadrados.append(asiento)
    if descuadrados:
        raise AsientosDescuadradosError(
            f"El periodo {periodo} no cuadra: asientos descuadrados {', '.join(descuadrados)}"
        )
    return {"periodo": periodo, "asientos": len(asientos)}


# Idempotent: matching statements against the ledger again finds the same matches.
@shared_task(bind=True, max_retries=3)
@track_task(
    "contabilidad.conciliar_banco",
    "contabilidad",
    "Conciliación bancaria",
    bounds={"fallos": (0, 3)},  # it retries at most 3 times (max_retries)
    idempotent=True,
)
def conciliar_banco(self: Any, cuenta: str, fallos: int = 1) -> dict[str, Any]:
    """Fails `fallos` times with a transient error, then succeeds."""
    if self.request.retries < fallos:
        raise self.retry(exc=ConnectionError("Banco no disponible"), countdown=0.2)
    return {"cuenta": cuenta, "movimientos": 37, "intentos": self.request.retries + 1}
