"""The skip window on its own: an injectable clock, no cache, no wall-clock wait."""

from __future__ import annotations

import logging

from taskboard.tracking.skipwindow import SkipWindow

logger = logging.getLogger("tests.skipwindow")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def window(clock: Clock) -> SkipWindow:
    return SkipWindow(5.0, "cache %s failed", logger=logger, clock=clock)


def test_skip_window_is_closed_until_a_failure():
    assert not window(Clock()).skipping()


def test_skip_window_skips_for_its_seconds_after_a_failure():
    clock = Clock()
    skip = window(clock)
    skip.failed("read")
    assert skip.skipping()
    clock.now += 4.9
    assert skip.skipping()
    clock.now += 0.1
    assert not skip.skipping()


def test_skip_window_a_failure_meanwhile_extends_it():
    clock = Clock()
    skip = window(clock)
    skip.failed("read")
    clock.now += 4.0
    skip.failed("write")
    clock.now += 4.0
    assert skip.skipping()


def test_skip_window_logs_the_first_failure_of_each_window_once(caplog):
    clock = Clock()
    skip = window(clock)
    with caplog.at_level(logging.WARNING, logger="tests.skipwindow"):
        skip.failed("read")
        skip.failed("write")  # the same window: not logged again
        clock.now += 5.0
        skip.failed("delete")  # a new window
    assert [record.getMessage() for record in caplog.records] == [
        "cache read failed",
        "cache delete failed",
    ]


def test_skip_window_close_ends_it_now():
    skip = window(Clock())
    skip.failed("read")
    skip.close()
    assert not skip.skipping()
