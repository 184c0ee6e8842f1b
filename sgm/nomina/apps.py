from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NominaConfig(AppConfig):
    name = "sgm.nomina"
    label = "nomina"
    verbose_name = _("Payroll")
