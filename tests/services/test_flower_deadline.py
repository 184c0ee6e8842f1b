"""FlowerService's total deadline: a Flower that trickles its answer is cut off in time."""

from __future__ import annotations

import time

import pytest

from taskboard.services.workers.flower import FlowerService, FlowerTimeout
from tests.faults.fakes import TricklingFlower


def test_a_trickling_flower_is_cut_off_at_the_deadline():
    trickle = TricklingFlower(interval=0.5)  # each byte well within the 3 s read timeout
    try:
        service = FlowerService(trickle.url, timeout=(1.0, 3.0), total=1.5)
        started = time.monotonic()
        with pytest.raises(FlowerTimeout):
            service.workers()
        elapsed = time.monotonic() - started
    finally:
        trickle.close()
    assert 1.4 <= elapsed < 2.5


def test_one_deadline_covers_a_sequence_of_calls():
    trickle = TricklingFlower(interval=0.5)
    try:
        service = FlowerService(trickle.url, timeout=(1.0, 3.0), total=10.0)
        started = time.monotonic()
        with service.deadline(1.0):
            for _ in range(3):
                with pytest.raises(FlowerTimeout):
                    service.workers()
        elapsed = time.monotonic() - started
    finally:
        trickle.close()
    assert elapsed < 2.0  # not three deadlines: the later calls had no time left


def test_an_answer_that_comes_in_time_is_read_whole():
    trickle = TricklingFlower(interval=0.001)
    try:
        answer = FlowerService(trickle.url, total=5.0).workers()
    finally:
        trickle.close()
    assert list(answer) == ["trickle@localhost"]
