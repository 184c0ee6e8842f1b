"""F9: the response headers (Content-Security-Policy, Permissions-Policy, Cache-Control:
no-store for a logged-in user) and bidi-override characters neutralised on every page.

In process through the test client, and over real HTTP from gunicorn in production settings
(DEBUG off, collected static files, HSTS behind the TLS proxy)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import Group
from django.urls import reverse

from taskboard.models import TaskState, TaskTemplate
from taskboard.tracking import sync_templates
from tests.factories import client_for, make_execution
from tests.processes import ROOT, free_port, wait_until

HX = {"HX-Request": "true"}
RLO, LRI, PDI = "\u202e", "\u2066", "\u2069"
BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def assert_policy(response) -> None:
    """Only the site's own scripts and styles: no inline code, no eval, no other origin."""
    policy = directives(response["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["form-action"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    header = response["Content-Security-Policy"]
    assert "unsafe" not in header and "*" not in header and "nonce" not in header


def private_pages(user, execution) -> list[tuple[str, dict[str, str]]]:
    """Every page and fragment family as the user sees it (allowed to launch the payroll
    template)."""
    sync_templates()
    group, _ = Group.objects.get_or_create(name="nominas")
    TaskTemplate.objects.get(key="nomina.consolidar").allowed_groups.add(group)
    user.groups.add(group)
    return [
        (reverse("taskboard:dashboard"), {}),
        (reverse("taskboard:list"), HX),
        (reverse("taskboard:stats"), HX),
        (reverse("taskboard:detail", args=[execution.task_id]), {}),
        (reverse("taskboard:progress", args=[execution.task_id]), HX),
        (reverse("taskboard:notifications"), {}),
        (reverse("taskboard:bell"), HX),
        (reverse("taskboard:templates"), {}),
        (reverse("taskboard:template_launch", args=["nomina.consolidar"]), {}),
        ("/nomina/", {}),
        ("/api/tasks/executions/", {}),
        ("/api/tasks/user-tasks/", {}),
    ]


@pytest.mark.parametrize("kind", ["plain", "staff"])
def test_logged_in_pages_carry_the_policy_and_are_never_stored(kind, ana, staff):
    user = staff if kind == "staff" else ana
    execution = make_execution(user=user, state=TaskState.PROGRESS, progress=40)
    client = client_for(user)
    for url, headers in private_pages(user, execution):
        response = client.get(url, headers=headers)
        assert response.status_code == 200, url
        assert_policy(response)
        assert "camera=()" in response["Permissions-Policy"], url
        assert "microphone=()" in response["Permissions-Policy"]
        assert "no-store" in response["Cache-Control"], (url, response.get("Cache-Control"))
    if kind == "staff":
        admin = client.get("/admin/")
        assert admin.status_code == 200 and "no-store" in admin["Cache-Control"]
        assert_policy(admin)


def test_anonymous_pages_carry_the_policy(db, client):
    login = client.get("/accounts/login/")
    assert login.status_code == 200
    assert_policy(login)
    assert "camera=()" in login["Permissions-Policy"]
    admin_login = client.get("/admin/login/")
    assert admin_login.status_code == 200
    assert_policy(admin_login)
    # A visitor's redirect to the login page is still covered.
    redirect = client.get("/tasks/")
    assert redirect.status_code == 302 and "Content-Security-Policy" in redirect


def test_pages_hold_no_inline_script_style_or_handler(ana):
    """What the policy would block is not there to block: no inline <script>, <style>,
    style= or on*= / hx-on, and htmx is told not to inject its indicator style."""
    execution = make_execution(user=ana, state=TaskState.PROGRESS, progress=40)
    client = client_for(ana)
    for url, headers in private_pages(ana, execution)[:-2]:
        html = client.get(url, headers=headers).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), url
        assert "<style" not in html and " style=" not in html, url
        assert not re.search(r"\s(on[a-z]+|hx-on[:\w-]*)=", html), url
        assert "[window." not in html, url  # htmx trigger filters are evaluated code
    page = client.get(reverse("taskboard:dashboard")).content.decode()
    assert '"includeIndicatorStyles": false' in page and '"allowEval": false' in page
    assert 'data-progress="40"' in page


def test_bidi_override_characters_are_not_shown(ana, django_user_model):
    boss = django_user_model.objects.create_superuser("boss", password="boss-pass-77")
    label = f"factura{RLO}fdp.exe"
    execution = make_execution(
        user=ana,
        state=TaskState.PROGRESS,
        progress=10,
        display_name=label,
        progress_message=f"hoja {LRI}\u05d0\u05d1{PDI} 3",
    )
    client = client_for(ana)
    pages = [
        client.get(reverse("taskboard:dashboard")),
        client.get(reverse("taskboard:list"), headers=HX),
        client.get(reverse("taskboard:detail", args=[execution.task_id])),
        client.get(reverse("taskboard:progress", args=[execution.task_id]), headers=HX),
        client_for(boss).get(f"/admin/taskboard/taskexecution/{execution.pk}/change/"),
    ]
    for response in pages:
        html = response.content.decode()
        assert response.status_code == 200
        assert not BIDI.search(html), response.request["PATH_INFO"]
        path = response.request["PATH_INFO"]
        assert ("facturafdp.exe" in html) or path.endswith("/progress/"), path
    # Right-to-left text itself is kept (only the controls go).
    assert "hoja \u05d0\u05d1 3" in pages[3].content.decode()
    # The record keeps what the task said; only what is displayed is neutralised.
    execution.refresh_from_db()
    assert execution.display_name == label


# --- Production settings, over real HTTP -----------------------------------------------------


@pytest.fixture
def production_web(tmp_path: Path):
    port = free_port()
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "production-headers-test-key-" + "x" * 40,
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "SGM_VAR_DIR": str(tmp_path / "var"),
        "STATIC_ROOT": str(tmp_path / "static"),
        "CELERY_BROKER_URL": "filesystem://",
        # Plain HTTP on loopback; the TLS proxy's X-Forwarded-Proto is sent by the test.
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "DJANGO_SUPERUSER_USERNAME": "boss",
        "DJANGO_SUPERUSER_PASSWORD": "boss-pass-77",
        "DJANGO_SUPERUSER_EMAIL": "boss@example.com",
    }
    for name in ("DJANGO_SETTINGS_MODULE", "SQLITE_TEST_NAME", "CACHE_URL"):
        env.pop(name, None)
    for args in (
        ["collectstatic", "--noinput"],
        ["migrate", "--noinput"],
        ["createsuperuser", "--noinput"],
    ):
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "sgm.wsgi:application", "-b", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{base}/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    try:
        try:
            wait_until(up, timeout=60, interval=0.3)
        except TimeoutError:
            pytest.fail((tmp_path / "gunicorn.log").read_text(errors="replace")[-3000:])
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_production_headers_over_http(production_web):
    base = production_web
    https = {"X-Forwarded-Proto": "https"}
    session = requests.Session()
    login_page = session.get(f"{base}/accounts/login/", headers=https, timeout=10)
    assert login_page.status_code == 200
    assert_policy(login_page.headers)
    assert "camera=()" in login_page.headers["Permissions-Policy"]
    assert login_page.headers["X-Frame-Options"] == "DENY"
    assert login_page.headers["X-Content-Type-Options"] == "nosniff"
    assert "max-age=31536000" in login_page.headers["Strict-Transport-Security"]
    assert login_page.headers["Referrer-Policy"] == "same-origin"

    logged_in = session.post(
        f"{base}/accounts/login/",
        data={
            "username": "boss",
            "password": "boss-pass-77",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={**https, "Referer": f"https://127.0.0.1:{base.rsplit(':', 1)[1]}/"},
        allow_redirects=False,
        timeout=10,
    )
    assert logged_in.status_code == 302, logged_in.text[:500]
    for path in ("/tasks/", "/tasks/fragments/list/", "/nomina/", "/api/tasks/executions/"):
        response = session.get(f"{base}{path}", headers=https, timeout=10)
        assert response.status_code == 200, path
        assert_policy(response.headers)
        assert "no-store" in response.headers["Cache-Control"], path
    # The collected static files stay cacheable (whitenoise, hashed names).
    dashboard = session.get(f"{base}/tasks/", headers=https, timeout=10).text
    css = re.search(r'href="(/static/taskboard/taskboard\.[0-9a-f]+\.css)"', dashboard)
    assert css, dashboard[:1000]
    static = session.get(base + css.group(1), headers=https, timeout=10)
    assert static.status_code == 200 and "no-store" not in static.headers.get("Cache-Control", "")
    assert "data-progress" in static.text and ".htmx-indicator" in static.text
