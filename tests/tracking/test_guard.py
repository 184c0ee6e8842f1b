"""never_raise: tracking errors are logged, not raised; an unreachable database is said once
a minute per place, not at every beat or progress report."""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError

from taskboard.tracking import guard
from taskboard.tracking.guard import never_raise


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch):
    monkeypatch.setattr(guard, "_said_at", {})


def test_database_away_is_one_warning_a_minute_per_place(caplog):
    caplog.set_level(logging.WARNING, logger="taskboard.tracking")
    for _ in range(50):
        with never_raise("cancel check"):
            raise OperationalError("connection refused")
    with never_raise("progress"):
        raise OperationalError("connection refused")
    records = [r for r in caplog.records if r.name == "taskboard.tracking"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
    assert "cancel check" in records[0].getMessage()
    assert "database is unreachable: connection refused" in records[0].getMessage()
    assert records[0].exc_info is None


def test_said_again_after_a_minute(caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="taskboard.tracking")
    clock = [1000.0]
    monkeypatch.setattr("taskboard.tracking.guard.time.monotonic", lambda: clock[0])
    for step in (0.0, 30.0, 61.0):
        clock[0] = 1000.0 + step
        with never_raise("cancel check"):
            raise OperationalError("gone")
    assert len([r for r in caplog.records if r.name == "taskboard.tracking"]) == 2


def test_other_errors_are_logged_in_full_every_time(caplog):
    caplog.set_level(logging.WARNING, logger="taskboard.tracking")
    for _ in range(3):
        with never_raise("summary"):
            raise ValueError("bad value")
    records = [r for r in caplog.records if r.name == "taskboard.tracking"]
    assert len(records) == 3
    assert all(r.levelno == logging.ERROR and r.exc_info for r in records)
