"""Fork again and again while taskboard's worker-side threads write (run by test_forksafe).

Run as a program, not inside pytest: it forks, and a pytest process holds threads and
files of its own. Prints one JSON line: forks, children that hung, children that failed,
and how many heartbeats and progress writes the threads made meanwhile.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sgm.settings")


class Consumer:
    """What the heartbeat reads from a Celery consumer, for a worker that is not there."""

    hostname = "forkcheck@localhost"
    pool = None
    controller = None


def child_query() -> int:
    """In the child: what a fresh pool process does first (Celery's Django fixup drops the
    inherited connections without closing them), then one query and one write."""
    from django.db import connections

    from taskboard.models import TaskExecution

    try:
        for conn in connections.all(initialized_only=True):
            conn.connection = None
        TaskExecution.objects.filter(pk=0).exists()
        TaskExecution.objects.filter(pk=0).update(progress=1)
    except Exception as error:  # reported, so a failure is not mistaken for a hang
        print(f"child {os.getpid()}: {error!r}", file=sys.stderr)
        return 3
    return 0


def main(forks: int, patience: float) -> dict[str, Any]:
    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from taskboard.models import TaskExecution, WorkerHeartbeat
    from taskboard.tracking.heartbeats import writer
    from taskboard.tracking.recorder import Write, buffer

    call_command("migrate", verbosity=0)
    ids = [
        TaskExecution.objects.create(task_id=f"fork-{n}", task_name="forkcheck", module="x").pk
        for n in range(300)
    ]
    connections.close_all()  # the forking thread holds no connection, like Celery's

    stop = threading.Event()
    writes = 0

    def feed() -> None:
        nonlocal writes
        while not stop.is_set():
            writer.nudge()
            buffer.put(Write(("pk", ids[writes % len(ids)]), None, {"progress": writes % 100}))
            writes += 1
            time.sleep(0.0002)

    writer.attach(Consumer())
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    hung = failed = 0
    for _ in range(forks):
        pid = os.fork()
        if pid == 0:
            os._exit(child_query())
        deadline = time.monotonic() + patience
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                failed += os.waitstatus_to_exitcode(status) != 0
                break
            if time.monotonic() > deadline:
                hung += 1
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                break
            time.sleep(0.002)
    stop.set()
    feeder.join()
    writer.stop()
    buffer.stop()
    beats = WorkerHeartbeat.objects.filter(hostname=Consumer.hostname).count()
    progressed = TaskExecution.objects.filter(task_name="forkcheck", progress__gt=0).count()
    return {
        "forks": forks,
        "hung": hung,
        "failed": failed,
        "writes_queued": writes,
        "heartbeat_rows": beats,
        "rows_progressed": progressed,
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), float(sys.argv[2]))))
