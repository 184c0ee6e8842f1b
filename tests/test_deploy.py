"""Production deployment: docker-compose.yml read as data, `check --deploy`, and the compose
commands run natively (no Docker engine here): gunicorn on PostgreSQL + Redis, a worker, beat
and Flower, with a task launched through the page."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests
import yaml
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import ROOT, free_port, wait_until

COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
POSTGRES_HELP = (
    "The deployment smoke test needs PostgreSQL: set POSTGRES_URL (default "
    "postgres://postgres@127.0.0.1:5432/test) to a server where that user may create databases."
)


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


VARIABLE = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default}, ${NAME:?error}; $$ is a literal $."""

    def value(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if env.get(name):
            return env[name]
        if kind == "-":
            return rest
        raise AssertionError(f"{name} is required by docker-compose.yml: {rest}")

    return VARIABLE.sub(value, text).replace("$$", "$")


# --- The compose file as data ---------------------------------------------------------------


def test_services_and_their_images():
    services = compose()["services"]
    default = {name for name, service in services.items() if "profiles" not in service}
    assert default == {"db", "redis", "migrate", "web", "worker", "beat", "flower"}
    assert set(services) - default == {"prometheus", "grafana"}  # the metrics profile
    assert services["db"]["image"] == "postgres:16"
    assert services["redis"]["image"].startswith("redis:7")
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["db"]["volumes"])
    for name in ("migrate", "web", "worker", "beat", "flower"):
        assert services[name]["build"] == "." and services[name]["env_file"] == ".env"
        assert services[name]["networks"] == ["backend"]


def test_health_checks_and_start_order():
    services = compose()["services"]
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["db"] == {"condition": "service_healthy"}
        assert depends["redis"] == {"condition": "service_healthy"}
        # Migrations run once, in their own service, before any of these start.
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["migrate"]["restart"] == "no"


def test_commands():
    services = compose()["services"]
    assert services["web"]["command"][:2] == ["gunicorn", "sgm.wsgi:application"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "sgm", "worker"]
    # Workers consume taskboard's own queue (reconciliation, routed there by the settings).
    queues = services["worker"]["command"][services["worker"]["command"].index("-Q") + 1]
    assert "taskboard" in queues.split(",") and "celery" in queues.split(",")
    # ... and every queue the settings route a task to (alerts' own among them).
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert "taskboard-alerts" in routed and routed <= set(queues.split(","))
    assert services["beat"]["command"][:4] == ["celery", "-A", "sgm", "beat"]
    assert services["flower"]["command"][:4] == ["celery", "-A", "sgm", "flower"]
    # Scalable with --scale worker=N: no fixed name, no published port.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]


def test_flower_has_auth_and_no_public_port():
    services = compose()["services"]
    flower = services["flower"]
    auth = [arg for arg in flower["command"] if arg.startswith("--basic-auth=")]
    assert auth == [
        "--basic-auth=${FLOWER_USER:?set FLOWER_USER in .env}"
        ":${FLOWER_PASSWORD:?set FLOWER_PASSWORD in .env}"
    ]
    assert all(str(port).startswith("127.0.0.1:") for port in flower.get("ports", []))
    assert "FLOWER_UNAUTHENTICATED_API" not in COMPOSE.read_text()
    assert "FLOWER_UNAUTHENTICATED_API" not in ENV_EXAMPLE.read_text()
    # Only web publishes a port to the world.
    public = [
        n
        for n, s in services.items()
        if any(not str(p).startswith("127.0.0.1:") for p in s.get("ports", []))
    ]
    assert public == ["web"]
    assert "FLOWER_URL" in services["web"]["environment"]


def test_image_runs_as_a_user_not_root():
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert "collectstatic" in DOCKERFILE.read_text()


def test_env_example_names_every_variable():
    example = env_example()
    used = set(VARIABLE.findall(COMPOSE.read_text()))
    assert {name for name, *_ in used} <= set(example)
    settings_source = (ROOT / "sgm" / "settings.py").read_text()
    read = set(
        re.findall(r"""(?:environ\.get|env_bool|env_list)\(\s*["'](\w+)["']""", settings_source)
    )
    # Set by docker-compose.yml itself, or paths of the development default only.
    provided = set(compose()["x-app"]["environment"]) | {
        "SGM_VAR_DIR",
        "SQLITE_TEST_NAME",
        "STATIC_ROOT",
        "EMAIL_FILE_PATH",  # the file mail backend's folder: the tests' workers
    }
    assert read - provided <= set(example), read - provided - set(example)


def test_check_deploy_is_clean_with_the_example_environment():
    env = {**os.environ, **env_example(), "DATABASE_URL": "postgres://u:p@db:5432/taskboard"}
    env.update(CELERY_BROKER_URL="redis://redis:6379/0", CACHE_URL="redis://redis:6379/2")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


# --- The compose commands, natively ---------------------------------------------------------


def native(command: list[str], replacements: dict[str, str]) -> list[str]:
    """A compose command as this machine runs it: this Python's tools, local addresses."""
    args = [replacements.get(arg, arg) for arg in command]
    for old, new in replacements.items():
        args = [arg.replace(old, new) for arg in args]
    if args[0] in ("celery", "gunicorn"):
        return [sys.executable, "-m", *args]
    if args[0] == "python":
        return [sys.executable, *args[1:]]
    return args


@pytest.fixture
def smoke_database() -> Iterator[str]:
    admin_url = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
    name = "taskboard_smoke"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as exc:
        pytest.fail(f"{POSTGRES_HELP} ({exc})", pytrace=False)
    parts = urlsplit(admin_url)
    yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class Processes:
    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env = tmp, env
        self.started: list[tuple[str, subprocess.Popen[bytes], Any]] = []

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.started.append((name, process, log))
        return process

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}\n{(self.tmp / f'{name}.log').read_text(errors='replace')[-3000:]}"
            for name, _, _ in self.started
        )

    def stop(self) -> None:
        for _, process, _ in self.started:
            process.terminate()
        for _, process, log in self.started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def test_compose_commands_serve_a_task_end_to_end(smoke_database, redis_server, tmp_path):
    services = compose()["services"]
    web_port, flower_port = free_port(), free_port()
    redis_base = redis_server.url.rsplit("/", 1)[0]
    example = env_example()
    env = {
        **os.environ,
        **example,
        "DATABASE_URL": smoke_database,
        "CELERY_BROKER_URL": f"{redis_base}/4",
        "CELERY_RESULT_BACKEND": f"{redis_base}/5",
        "CACHE_URL": f"{redis_base}/6",
        "FLOWER_URL": f"http://127.0.0.1:{flower_port}",
        "ALLOWED_HOSTS": "127.0.0.1",
        # Plain HTTP on loopback: no TLS proxy in front of this test.
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "STATIC_ROOT": str(tmp_path / "static"),
        "SGM_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SUPERUSER_USERNAME": "admin",
        "DJANGO_SUPERUSER_PASSWORD": "smoke-admin-pass-1",
        "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("SQLITE_TEST_NAME", None)
    replacements = {
        "0.0.0.0:8000": f"127.0.0.1:{web_port}",
        "--address=0.0.0.0": "--address=127.0.0.1",
        "--port=5555": f"--port={flower_port}",
        "/app/var/celerybeat-schedule": str(tmp_path / "celerybeat-schedule"),
    }

    def command(service: str) -> list[str]:
        raw = [interpolate(str(arg), env) for arg in services[service]["command"]]
        return native(raw, replacements)

    def run(args: list[str]) -> None:
        result = subprocess.run(
            args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"{shlex.join(args)}\n{result.stdout}\n{result.stderr}"

    # What the image build and the one-shot services do, then the long-running ones.
    run([sys.executable, "manage.py", "collectstatic", "--noinput"])
    run(command("migrate"))
    run([sys.executable, "manage.py", "createsuperuser", "--noinput"])
    processes = Processes(tmp_path, env)
    try:
        for service in ("web", "worker", "beat", "flower"):
            processes.start(service, command(service))
        base = f"http://127.0.0.1:{web_port}"

        def healthy() -> bool:
            try:
                return requests.get(f"{base}/healthz", timeout=5).status_code == 200
            except requests.RequestException:  # not listening yet, or still booting
                return False

        try:
            wait_until(healthy, timeout=60, interval=0.5)
        except TimeoutError:
            pytest.fail(f"web never became healthy\n{processes.logs()}")
        assert requests.get(f"{base}/healthz", timeout=5).json()["status"] == "ok"

        session = requests.Session()
        session.get(f"{base}/accounts/login/", timeout=10)
        login = session.post(
            f"{base}/accounts/login/",
            data={
                "username": "admin",
                "password": "smoke-admin-pass-1",
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"{base}/accounts/login/"},
            timeout=10,
        )
        assert login.url == f"{base}/tasks/", processes.logs()
        # Hashed, compressed static files served by whitenoise.
        css = re.search(r'href="(/static/taskboard/taskboard\.[0-9a-f]+\.css)"', login.text)
        assert css, login.text[:2000]
        assert session.get(base + css.group(1), timeout=10).status_code == 200

        launched = session.post(
            f"{base}/nomina/lanzar/consolidar/",
            data={"periodo_id": "3", "empleados": "5"},
            headers={
                "HX-Request": "true",
                "X-CSRFToken": session.cookies["csrftoken"],
                "Referer": base,
            },
            timeout=10,
        )
        assert launched.status_code == 200, launched.text
        found = re.search(r'data-task-id="([^"]+)"', launched.text)
        assert found, launched.text
        task_id = found.group(1)

        def succeeded() -> bool:
            page = session.get(f"{base}/tasks/{task_id}/", timeout=10)
            return page.status_code == 200 and "state-success" in page.text

        try:
            wait_until(succeeded, timeout=60, interval=0.5)
        except TimeoutError:
            pytest.fail(f"the task did not succeed\n{processes.logs()}")
        listed = session.get(f"{base}/tasks/fragments/list/", timeout=10).text
        assert task_id in listed

        # Prometheus's scrape (the metrics profile): plain HTTP to web:8000 with the token.
        scrape = requests.get(
            f"{base}/metrics",
            headers={
                "Authorization": f"Bearer {example['TASKBOARD_METRICS_TOKEN']}",
                "Host": "web:8000",
            },
            timeout=30,
        )
        assert scrape.status_code == 200, scrape.text[:2000]
        succeeded_total = sum(
            sample.value
            for family in text_string_to_metric_families(scrape.text)
            for sample in family.samples
            if sample.name == "taskboard_tasks_finished_total"
            and sample.labels["module"] == "nomina"
            and sample.labels["state"] == "SUCCESS"
        )
        assert succeeded_total >= 1, scrape.text[:3000]
        assert requests.get(f"{base}/metrics", timeout=10).status_code == 401

        flower = f"http://127.0.0.1:{flower_port}/api/workers"
        wait_until(lambda: _answers(flower), timeout=30, interval=0.5)
        assert requests.get(flower, timeout=5).status_code == 401
        auth = (example["FLOWER_USER"], example["FLOWER_PASSWORD"])
        assert requests.get(flower, auth=auth, timeout=10).status_code == 200

        # Django logs logfmt lines on stdout (a 404 is a django.request warning).
        assert session.get(f"{base}/tasks/no-such-task/", timeout=10).status_code == 404
        time.sleep(0.5)
        web_log = (tmp_path / "web.log").read_text(errors="replace")
        assert re.search(r"^time=\S+ level=WARNING logger=django.request ", web_log, re.MULTILINE)
    finally:
        processes.stop()


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=5)
        return True
    except requests.RequestException:
        return False
