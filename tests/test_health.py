"""/healthz: database and broker, 200 or 503, never a secret."""

from __future__ import annotations

import pytest

from sgm.celery import app as celery_app
from tests.processes import closed_port_url


def test_healthy(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    writes = body.pop("writes")
    assert body == {"status": "ok", "database": "ok", "broker": "ok", "cache": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert set(writes) >= {"pending", "retried", "spilled", "replayed", "dropped"}
    assert writes["dropped"] == 0 and writes["database_away"] == 0


def test_answers_any_host_and_plain_http(client, db, settings):
    # The container's probe asks http://127.0.0.1:8000/healthz, whatever ALLOWED_HOSTS says.
    settings.ALLOWED_HOSTS = ["tasks.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz", headers={"Host": "10.0.0.7:8000"}).status_code == 200
    assert client.get("/tasks/", headers={"Host": "10.0.0.7:8000"}).status_code == 400


@pytest.fixture
def broker_down():
    url = celery_app.conf.broker_url
    dead = closed_port_url().replace("http://", "redis://") + "/0"
    celery_app.conf.update(broker_url=dead)
    yield dead
    celery_app.conf.update(broker_url=url)


def test_broker_down_is_503_without_its_address(client, db, broker_down):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    body.pop("writes")
    assert body == {
        "status": "error",
        "database": "ok",
        "broker": "error",
        "cache": "ok",
        "detail": {"broker": "refused"},
    }
    port = broker_down.rsplit(":", 1)[1].split("/")[0]
    assert port not in response.content.decode()
