"""The Celery app of SGM: the standard three-line wiring."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sgm.settings")

app = Celery("sgm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
