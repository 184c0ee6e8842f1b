"""single_flight: waiting viewers never fetch; a sick cache degrades to this process's."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable

from django.core.cache import caches

from taskboard.conf import conf
from tests.processes import closed_port_url

# The module (the package re-exports its function under the same name).
flight = importlib.import_module("taskboard.services.workers.single_flight")
KEY = "tbtest:flight"


def counting() -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def fetch() -> str:
        calls.append(1)
        return "fresh"

    return calls, fetch


def test_a_viewer_waiting_on_another_fetch_never_fetches_itself():
    cache = caches[conf.CACHE_ALIAS]
    cache.delete(KEY)
    cache.add(f"{KEY}:lock", "another viewer", timeout=30)
    calls, fetch = counting()
    try:
        started = time.monotonic()
        value = flight.single_flight(
            KEY, fetch, fresh_for=5, budget=30, unavailable=lambda: "not yet", wait=0.5
        )
        elapsed = time.monotonic() - started
    finally:
        cache.delete(f"{KEY}:lock")
    assert value == "not yet" and calls == []
    assert 0.5 <= elapsed < 1.5


def test_a_stale_value_is_shown_while_another_refreshes():
    cache = caches[conf.CACHE_ALIAS]
    cache.set(KEY, flight._Entry(time.time() - 60, "stale"), timeout=60)
    cache.add(f"{KEY}:lock", "another viewer", timeout=30)
    calls, fetch = counting()
    try:
        value = flight.single_flight(
            KEY, fetch, fresh_for=5, budget=30, unavailable=lambda: "not yet"
        )
    finally:
        cache.delete_many([KEY, f"{KEY}:lock"])
    assert value == "stale" and calls == []


def test_a_cache_that_is_down_costs_one_fetch_per_process_and_interval(settings, monkeypatch):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": closed_port_url().replace("http://", "redis://") + "/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    flight.cache_window.close()
    monkeypatch.setattr(flight, "_local", flight._LocalStore())
    calls, fetch = counting()
    started = time.monotonic()
    values = [
        flight.single_flight(KEY, fetch, fresh_for=60, budget=5, unavailable=lambda: "not yet")
        for _ in range(5)
    ]
    assert values == ["fresh"] * 5 and calls == [1]
    assert time.monotonic() - started < 1.0  # refused at once, then not asked again


def test_once_per_opens_once_per_interval_shared_or_local(settings, monkeypatch):
    flight.cache_window.close()
    monkeypatch.setattr(flight, "_local", flight._LocalStore())
    caches[conf.CACHE_ALIAS].delete("tbtest:gate")
    assert [flight.once_per("tbtest:gate", 30) for _ in range(3)] == [True, False, False]
    caches[conf.CACHE_ALIAS].delete("tbtest:gate")
    # The shared cache down: the gate still opens, once, from this process's memory, and
    # the dead cache is asked once (its refusal remembered), not at every call.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": closed_port_url().replace("http://", "redis://") + "/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    started = time.monotonic()
    assert [flight.once_per("tbtest:gate", 30) for _ in range(3)] == [True, False, False]
    assert time.monotonic() - started < 1.0
