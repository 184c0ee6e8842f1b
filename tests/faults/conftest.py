"""The fault-injection suite: real processes killed, real services stopped and frozen.

Every test here is marked `faults` (so `make test` leaves them out) and runs with
`make test-faults`, which CI runs too. The services these tests break are their own:
a private redis-server, a private PostgreSQL cluster, a fake Flower on a local socket.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)
