"""Payroll (nómina) tasks: the demo's realistic long-running work."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from celery import shared_task

from taskboard.utils import report_progress, track_task

# What one launch may ask for (the launch form, the service and the payroll page refuse
# more): the work a plain user can put on the workers with one click is bounded.
MAX_PERIODO = 999_999
MAX_EMPLEADOS = 1000
MAX_PAGINAS = 1000
MAX_PAUSA = 5.0


# Not idempotent: consolidating a payroll twice pays twice. Run at most once: a worker that
# dies mid-run leaves it LOST, for a person to look at.
@shared_task(bind=True)
@track_task(
    "nomina.consolidar",
    "nomina",
    "Consolidar nómina",
    bounds={
        "periodo_id": (1, MAX_PERIODO),
        "empleados": (1, MAX_EMPLEADOS),
        "pausa": (0, MAX_PAUSA),
    },
)
def consolidar_nomina(
    self: Any,
    periodo_id: int,
    user_id: int | None = None,
    empleados: int = 40,
    pausa: float = 0.05,
) -> dict[str, Any]:
    """Consolidate the payroll of a period, one employee at a time."""
    total = Decimal("0")
    for numero in range(1, empleados + 1):
        time.sleep(pausa)
        total += Decimal("1850.00") + Decimal(numero % 7) * Decimal("35.50")
        report_progress(numero, empleados, f"Empleado {numero} de {empleados}")
    return {"periodo_id": periodo_id, "empleados": empleados, "total_neto": str(total)}


# Idempotent: exporting again writes the same PDFs. A worker that dies gives it back.
@shared_task(bind=True)
@track_task(
    "nomina.exportar",
    "nomina",
    "Exportar nóminas a PDF",
    bounds={"periodo_id": (1, MAX_PERIODO), "paginas": (1, MAX_PAGINAS), "pausa": (0, MAX_PAUSA)},
    idempotent=True,
)
def exportar_nominas(
    self: Any, periodo_id: int, user_id: int | None = None, paginas: int = 600, pausa: float = 0.5
) -> dict[str, Any]:
    """A long export that users cancel: each page takes a while."""
    for pagina in range(1, paginas + 1):
        time.sleep(pausa)
        report_progress(pagina, paginas, f"Página {pagina} de {paginas}")
    return {"periodo_id": periodo_id, "paginas": paginas}
