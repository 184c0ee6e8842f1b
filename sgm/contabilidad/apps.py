from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ContabilidadConfig(AppConfig):
    name = "sgm.contabilidad"
    label = "contabilidad"
    verbose_name = _("Accounting")
