"""A pool process forked while taskboard's threads write must not hang (tracking/forksafe.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.processes import ROOT

FORKS = 200  # without the guard about 1 fork in 20 hung: 200 make a miss very unlikely


def test_forks_during_heartbeat_and_flush_writes_never_hang(tmp_path: Path):
    # SQLite takes a process-wide mutex on every allocation: the driver most likely to be
    # caught mid-call. A scratch file, so the heavy writing disturbs no other test.
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'fork.sqlite3'}"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.forkcheck", str(FORKS), "5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # The threads were really busy while the forks happened...
    assert result["writes_queued"] > FORKS
    assert result["heartbeat_rows"] == 1
    assert result["rows_progressed"] > 100
    # ...and every child got through its first query.
    assert (result["hung"], result["failed"]) == (0, 0), done.stderr[-3000:]
