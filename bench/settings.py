"""Settings of the benchmarks: the project's settings plus django-celery-results.

django-celery-results is only the benchmark's reference (its ``django-db`` result backend),
so it is installed here and not in the project.
"""

from __future__ import annotations

from sgm.settings import *  # noqa: F403
from sgm.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_celery_results"]
