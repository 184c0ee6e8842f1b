"""The example nomina module's launch endpoints refuse posts without a CSRF token."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from taskboard.models import TaskExecution


@pytest.mark.parametrize(
    ("url", "data"),
    [
        (reverse("nomina:launch", args=["consolidar"]), {"periodo_id": "3"}),
        (reverse("nomina:launch", args=["exportar"]), {"periodo_id": "3"}),
        (reverse("nomina:launch_consolidation"), {"periodo_id": "3"}),
    ],
)
def test_launch_needs_csrf(ana, url, data, django_capture_on_commit_callbacks):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ana)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(url, data)
    assert response.status_code == 403
    assert callbacks == [] and not TaskExecution.objects.exists()
