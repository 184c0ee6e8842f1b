"""The compose profile `metrics` read as data: Prometheus scraping web's /metrics with the
bearer token, Grafana provisioned with taskboard's dashboard, every panel's query naming
metrics a live /metrics exports."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from taskboard.models import TaskState
from taskboard.views.metrics import METRICS_KEY
from tests.factories import make_execution
from tests.processes import ROOT
from tests.test_deploy import compose, env_example, interpolate

DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "taskboard.json"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
TOKEN_FILE = "/prometheus/metrics-token"
METRIC = re.compile(r"\btaskboard_[a-z0-9_]+\b")


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def prometheus_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(PROMETHEUS.read_text())
    return data


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host path of a service's bind mounts (":ro" dropped)."""
    found = {}
    for volume in service.get("volumes", []):
        host, container, *_ = str(volume).split(":")
        found[container] = host
    return found


def test_the_metrics_profile_holds_prometheus_and_grafana_on_loopback():
    services = compose()["services"]
    for name in ("prometheus", "grafana"):
        service = services[name]
        assert service["profiles"] == ["metrics"]
        assert service["networks"] == ["backend"]
        assert all(str(port).startswith("127.0.0.1:") for port in service["ports"])
    assert services["prometheus"]["depends_on"]["web"] == {"condition": "service_healthy"}
    assert {"prometheusdata", "grafanadata"} <= set(compose()["volumes"])


def test_profile_services_require_no_variable_of_a_default_install():
    """Compose interpolates every service, profile or not: a ${X:?} there would stop a plain
    `docker compose up` of someone who never set X. Each service checks its own at start."""
    for name in ("prometheus", "grafana"):
        text = yaml.safe_dump(compose()["services"][name])
        assert ":?" not in text, name
    prometheus = compose()["services"]["prometheus"]
    assert prometheus["environment"]["TASKBOARD_METRICS_TOKEN"] == "${TASKBOARD_METRICS_TOKEN:-}"
    grafana = compose()["services"]["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    for variable in ("TASKBOARD_METRICS_TOKEN", "GRAFANA_ADMIN_PASSWORD"):
        assert env_example()[variable].startswith("CHANGE-me"), variable


def prometheus_start(tmp_path: Any, token: str) -> subprocess.CompletedProcess[str]:
    """The prometheus service's start command as its shell runs it, writing the token file
    under tmp_path and exec'ing `true` instead of Prometheus."""
    command = compose()["services"]["prometheus"]["command"][0]
    script = interpolate(command, {}).replace(TOKEN_FILE, str(tmp_path / "token"))
    script = script.replace("exec /bin/prometheus", "exec true")
    env = {"PATH": "/usr/bin:/bin", "TASKBOARD_METRICS_TOKEN": token}
    return subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True)


def test_prometheus_writes_the_token_it_scrapes_with_or_refuses_to_start(tmp_path):
    assert compose()["services"]["prometheus"]["entrypoint"] == ["/bin/sh", "-c"]
    refused = prometheus_start(tmp_path, "")
    assert refused.returncode == 1
    assert "set TASKBOARD_METRICS_TOKEN in .env" in refused.stderr
    started = prometheus_start(tmp_path, "the-token-1")
    assert started.returncode == 0, started.stderr
    assert (tmp_path / "token").read_text() == "the-token-1"  # no newline: the whole token


def test_prometheus_scrapes_web_metrics_with_the_bearer_token():
    services = compose()["services"]
    prometheus = services["prometheus"]
    config_path = mounts(prometheus)["/etc/prometheus/prometheus.yml"]
    assert (ROOT / config_path).resolve() == PROMETHEUS
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"][0]
    (job,) = prometheus_config()["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["scheme"] == "http"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": TOKEN_FILE}
    assert job["static_configs"] == [{"targets": ["web:8000"]}]
    # web listens there (its gunicorn --bind), with the token from .env
    assert "0.0.0.0:8000" in services["web"]["command"]
    assert "TASKBOARD_METRICS_TOKEN" in env_example()
    # a scrape no slower than the snapshot it reads is cached
    interval = float(prometheus_config()["global"]["scrape_interval"].rstrip("s"))
    assert interval >= float(env_example()["TASKBOARD_METRICS_CACHE_SECONDS"])


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard():
    grafana = compose()["services"]["grafana"]
    paths = mounts(grafana)
    assert (ROOT / paths["/etc/grafana/provisioning"]).resolve() == DEPLOY / "grafana/provisioning"
    assert (ROOT / paths["/etc/grafana/dashboards"]).resolve() == DASHBOARD.parent
    provisioning = DEPLOY / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "taskboard.yml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
    board = dashboard()
    assert board["uid"] == "taskboard" and board["panels"]
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]


def live_sample_names() -> set[str]:
    """Every sample name a real scrape exports, with rows of every kind present."""
    now = timezone.now()
    for state in (TaskState.SUCCESS, TaskState.FAILURE, TaskState.STARTED, TaskState.PENDING):
        make_execution(state=state, duration=3.0, created_at=now)
    make_execution(state=TaskState.LOST, lost_at=now)
    cache.delete_many([METRICS_KEY, f"{METRICS_KEY}:lock"])
    response = Client().get("/metrics", headers={"Authorization": "Bearer deploy-test-token"})
    assert response.status_code == 200
    text = response.content.decode()
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    # Families without a series yet (no queue seen) still have # TYPE lines.
    names.update(re.findall(r"^# TYPE (\S+)", text, flags=re.MULTILINE))
    return names


@pytest.mark.django_db
def test_every_panel_queries_metrics_the_collector_exports(settings):
    settings.TASKBOARD_METRICS_TOKEN = "deploy-test-token"
    exported = live_sample_names()
    queried: set[str] = set()
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            names = set(METRIC.findall(target["expr"]))
            assert names, (panel["title"], target["expr"])
            assert names <= exported, (panel["title"], names - exported)
            queried |= names
    for variable in dashboard()["templating"]["list"]:
        assert set(METRIC.findall(variable["definition"])) <= exported, variable["name"]
    # The dashboard shows every kind of thing taskboard exports.
    for name in (
        "taskboard_tasks_finished_total",
        "taskboard_task_duration_seconds_bucket",
        "taskboard_tasks_running",
        "taskboard_tasks_queued",
        "taskboard_tasks_lost_total",
        "taskboard_workers_online",
        "taskboard_queue_length",
        "taskboard_tracking_write_lag_seconds",
        "taskboard_tracking_dropped_writes_total",
        "taskboard_tracking_spilled_writes_total",
    ):
        assert name in queried, name
