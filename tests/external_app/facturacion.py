"""A module outside the project (think: another SGM team's app) using only the seed's API.

It imports nothing from taskboard but `taskboard.utils`, as the seed documented.
"""

from __future__ import annotations

import time
from typing import Any

from celery import shared_task

from taskboard.utils import (
    finish_task,
    report_progress,
    start_task_tracking,
    track_task,
    update_task_progress,
)


class FacturaInvalidaError(Exception):
    pass


@shared_task(bind=True)
@track_task("facturacion.emitir", "facturacion", "Emitir facturas")
def emitir_facturas(self: Any, lote: int, user_id: int | None = None, facturas: int = 5) -> int:
    """The seed's explicit style: start, update by execution id, finish."""
    execution = start_task_tracking(self.request.id, "emitir_facturas", "facturacion")
    for numero in range(1, facturas + 1):
        time.sleep(0.02)
        update_task_progress(execution.id, numero * 100 / facturas, f"Factura {numero}")
    finish_task(execution.id, success=True, result={"lote": lote, "facturas": facturas})
    return facturas


@shared_task(bind=True)
@track_task("facturacion.validar", "facturacion", "Validar facturas")
def validar_facturas(self: Any, lote: int, user_id: int | None = None) -> str:
    """The one-line style: report_progress per step; fails on an odd lote."""
    for paso in range(1, 4):
        report_progress(paso, 3, f"Paso {paso}")
    if lote % 2:
        raise FacturaInvalidaError(f"El lote {lote} tiene una factura sin NIF")
    return "ok"
