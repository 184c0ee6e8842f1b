"""Skip a dependency for a few seconds after it failed.

A frozen Redis answers nothing until the socket timeout: asked at every request (or every
batch of the recorder) it would cost each one that timeout. So whoever uses the shared cache
next to a fallback (sessions, the change stamp, single-flight) remembers a failure and goes
straight to the fallback for a while, and says so in the log once per spell, not once per
failed call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class SkipWindow:
    """After `failed()`, `skipping()` is True for `seconds` (a failure meanwhile extends it).

    The first failure of a window logs `message % detail` as a warning on `logger`;
    failures while the window is open only extend it. `clock` is injectable for tests.
    """

    def __init__(
        self,
        seconds: float,
        message: str,
        *,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.message = message
        self.logger = logger
        self._clock = clock
        self._until = 0.0
        self._lock = threading.Lock()

    def skipping(self) -> bool:
        """True while a recent failure says: do not ask the dependency now."""
        return self._clock() < self._until

    def failed(self, detail: object) -> None:
        """The dependency just failed: skip it from now for `seconds`."""
        with self._lock:
            first = not self.skipping()
            self._until = self._clock() + self.seconds
        if first:
            self.logger.warning(self.message, detail)

    def close(self) -> None:
        """End the window now: the next caller asks the dependency again (tests use it)."""
        with self._lock:
            self._until = 0.0
