"""Sessions on the shared cache (taskboard/sessions.py): read from Redis, so a request does
not read its session row; written through to the database; and a cache that cannot be
reached falls back to the database instead of failing the request."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from taskboard import sessions
from tests.factories import make_user
from tests.processes import free_port

PASSWORD = "secret-pass-123"


def log_in(client: Client, username: str) -> None:
    answer = client.post("/accounts/login/", {"username": username, "password": PASSWORD})
    assert answer.status_code == 302, answer.content[:500]


def session_reads(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "django_session" in q["sql"]]


@pytest.fixture
def ana(db):
    return make_user("ana")


def test_a_logged_in_request_reads_its_session_from_the_cache(ana):
    client = Client()
    log_in(client, "ana")
    assert Session.objects.filter(session_key=client.session.session_key).exists()
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/tasks/").status_code == 200
    assert session_reads(queries) == []


def test_a_logout_ends_the_session_in_the_cache_too(ana):
    client = Client()
    log_in(client, "ana")
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    client.post("/accounts/logout/")
    stale = Client()
    stale.cookies[settings.SESSION_COOKIE_NAME] = key
    assert stale.get("/tasks/").status_code == 302  # to the login page: the old key is gone


@pytest.fixture
def unreachable_cache(settings):
    """The sessions' cache is a Redis nothing listens on: every use is refused."""
    settings.CACHES = {
        **settings.CACHES,
        "unreachable": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
        },
    }
    with override_settings(SESSION_CACHE_ALIAS="unreachable"):
        yield


def test_with_the_cache_unreachable_sessions_fall_back_to_the_database(ana, unreachable_cache):
    client = Client()
    sessions.cache_window.close()  # each step meets the refused cache, not the skip window
    log_in(client, "ana")
    sessions.cache_window.close()
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/tasks/").status_code == 200
    assert session_reads(queries), "the session came from the database"
    sessions.cache_window.close()
    assert client.post("/accounts/logout/").status_code == 302
    sessions.cache_window.close()
    assert client.get("/tasks/").status_code == 302  # logged out
    assert not Session.objects.exists()


def test_after_a_cache_failure_the_cache_is_skipped_for_a_while(ana, unreachable_cache):
    client = Client()
    sessions.cache_window.close()
    log_in(client, "ana")
    assert sessions.cache_window.skipping(), "the refused cache started a skip window"
    assert client.get("/tasks/").status_code == 200
