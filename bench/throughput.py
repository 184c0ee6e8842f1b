"""How many tracked tasks a second, with 1, 2 and 4 workers, and what they cost PostgreSQL?
A benchmark, not a test (issue 12: the scale-out ceiling).

It starts a private PostgreSQL cluster (initdb + pg_ctl in a temp folder, its own port,
the server's default settings) and a private redis-server, migrates, and for each worker
count N:

1. starts N separate Celery workers (each `-P prefork -c 1`: one consumer and one pool
   process, as N machines of one process each would run), consuming an idle queue;
2. publishes the tasks (tracked noop tasks) to another queue and waits until their
   PENDING rows are written: the publisher's cost is measured, but outside the timing;
3. tells every worker to consume that queue (add_consumer) and times until every task
   ran and its SUCCESS row is written (taskboard writes behind: its writes count).

It prints tasks/s for each N, and PostgreSQL's CPU milliseconds per task: the sum of
utime + stime of the cluster's processes from /proc/<pid>/stat before and after (its
postmaster, every live backend, and the backends that ended meanwhile, which the
postmaster reaped), for the publication (the PENDING row) and the run (the final write and
the rest). From the total, an estimate of the tasks a second one PostgreSQL core could
record: 1000 / cpu_ms_per_task, the ceiling of adding workers on more machines.

Usage, from the repository root (make bench-throughput)::

    .venv/bin/python bench/throughput.py [--tasks N] [--workers 1,2,4] [--pg-bin DIR]
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import glob
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:1] = [str(REPO_ROOT)]  # run as a script, sys.path[0] is bench/

from bench.tracking_overhead import (  # noqa: E402
    Process,
    _children_of,
    _cpu_of,
    spawn,
    start_redis,
    stop,
    stop_all,
)

IDLE_QUEUE = "bench.idle"


# --- A private PostgreSQL cluster ---------------------------------------------------------


def _postgres_bin(given: str | None) -> Path:
    candidates = [given] if given else sorted(glob.glob("/usr/lib/postgresql/*/bin"))[::-1]
    for folder in filter(None, candidates):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    raise SystemExit(
        "initdb and pg_ctl not found (Debian/Ubuntu: apt-get install postgresql; "
        "or --pg-bin /usr/lib/postgresql/15/bin)"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Cluster:
    bin_dir: Path
    home: Path
    port: int
    as_postgres: tuple[str, ...]

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/taskboard"

    def _run(self, *command: str) -> None:
        result = subprocess.run([*self.as_postgres, *command], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {result.stdout}{result.stderr}")

    def pg_ctl(self, *args: str) -> None:
        log = str(self.home / "postgres.log")
        pg_ctl = str(self.bin_dir / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data_dir), "-l", log, "-w", "-t", "60", *args)

    def postmaster_pid(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def cpu_seconds(self) -> float:
        """CPU of the whole cluster so far: the postmaster (with the children it reaped:
        cutime + cstime) and its live children."""
        pid = self.postmaster_pid()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        reaped = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
        return _cpu_of(pid) + reaped + sum(_cpu_of(child) for child in _children_of(pid))


def start_cluster(bin_dir: Path) -> Cluster:
    as_postgres: tuple[str, ...] = ()
    if os.geteuid() == 0:  # the server refuses to run as root
        if shutil.which("runuser") is None:
            raise SystemExit("running as root needs runuser and the user postgres")
        as_postgres = ("runuser", "-u", "postgres", "--")
    home = Path(tempfile.mkdtemp(prefix="taskboard-throughput-pg-"))
    home.chmod(0o777)  # the user postgres writes here
    cluster = Cluster(bin_dir, home, _free_port(), as_postgres)
    initdb = str(bin_dir / "initdb")
    cluster._run(initdb, "-D", str(cluster.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8")
    options = f"-p {cluster.port} -k {home} -h 127.0.0.1"
    cluster.pg_ctl("start", "-o", options)
    atexit.register(_destroy, cluster)
    import psycopg

    with psycopg.connect(cluster.url.replace("/taskboard", "/postgres"), autocommit=True) as c:
        c.execute("CREATE DATABASE taskboard")
    return cluster


def _destroy(cluster: Cluster) -> None:
    with contextlib.suppress(RuntimeError, OSError):
        cluster.pg_ctl("stop", "-m", "fast")
    shutil.rmtree(cluster.home, ignore_errors=True)


# --- The benchmark ------------------------------------------------------------------------


@dataclass
class Step:
    workers: int
    tasks_per_second: float
    publish_pg_ms: float
    run_pg_ms: float
    run_worker_ms: float

    @property
    def pg_ms(self) -> float:
        return self.publish_pg_ms + self.run_pg_ms


def environment(cluster: Cluster, redis_url: str, counter_key: str) -> dict[str, str]:
    pythonpath = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {
        "DJANGO_SETTINGS_MODULE": "sgm.settings",
        "PYTHONPATH": os.pathsep.join(pythonpath),
        "DATABASE_URL": cluster.url,
        "CONN_MAX_AGE": "60",
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": "",
        "TASKBOARD_ENABLED": "1",
        "DEBUG": "0",
        "SECRET_KEY": "taskboard-benchmark-only",
        "LOG_LEVEL": "WARNING",
        "BENCH_REDIS_URL": redis_url,
        "BENCH_COUNTER_KEY": counter_key,
    }


def start_workers(count: int, log_dir: Path, run_id: str) -> list[tuple[Process, str]]:
    started = []
    for number in range(count):
        name = f"bench-{run_id}-{count}-{number}@{socket.gethostname()}"
        command = [
            sys.executable, "-m", "celery", "-A", "sgm", "worker", "-P", "prefork", "-c", "1",
            "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-I", "bench.tasks", "-n", name, "-Q", IDLE_QUEUE,
        ]  # fmt: skip
        log = log_dir / f"worker-{count}-{number}.log"
        started.append((spawn(command, log, dict(os.environ)), name))
    from sgm.celery import app

    deadline = time.monotonic() + 120
    waiting = {name for _, name in started}
    while waiting:
        answers = app.control.ping(timeout=0.5) or []
        waiting -= {name for answer in answers for name in answer}
        if time.monotonic() > deadline or any(p.poll() is not None for p, _ in started):
            raise RuntimeError(f"workers did not start, see {log_dir}")
    return started


def worker_cpu(workers: list[tuple[Process, str]]) -> float:
    pids = [pid for process, _ in workers for pid in (process.pid, *_children_of(process.pid))]
    return sum(_cpu_of(pid) for pid in pids)


def rows_in(state: str, queue: str) -> int:
    from taskboard.models import TaskExecution

    return TaskExecution.objects.filter(state=state, queue=queue).count()


def wait_for(
    check: Callable[[], bool], what: str, deadline: float, workers: list[tuple[Process, str]]
) -> None:
    while not check():
        if time.monotonic() > deadline or any(p.poll() is not None for p, _ in workers):
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def run_step(count: int, tasks: int, cluster: Cluster, log_dir: Path, run_id: str) -> Step:
    from bench.tasks import finished_count, noop, reset_count
    from sgm.celery import app
    from taskboard.models import TaskState
    from taskboard.tracking import flush_writes

    workers = start_workers(count, log_dir, run_id)
    queue = f"bench.{run_id}.{count}"
    try:
        # Warm up: every worker's connections, statements and caches.
        app.control.add_consumer(queue, reply=True, timeout=5)
        reset_count()
        for _ in range(50 * count):
            noop.apply_async(queue=queue)
        flush_writes()
        deadline = time.monotonic() + 120
        wait_for(lambda: rows_in(TaskState.SUCCESS, queue) >= 50 * count, "warm-up", deadline,
                 workers)  # fmt: skip
        app.control.cancel_consumer(queue, reply=True, timeout=5)

        before = cluster.cpu_seconds()
        for _ in range(tasks):
            noop.apply_async(queue=queue)
        flush_writes()
        wait_for(lambda: rows_in(TaskState.PENDING, queue) >= tasks, "PENDING rows",
                 time.monotonic() + 120, workers)  # fmt: skip
        published = cluster.cpu_seconds()

        cpu_before = worker_cpu(workers)
        reset_count()
        started = time.perf_counter()
        app.control.add_consumer(queue, reply=True, timeout=5)
        deadline = time.monotonic() + max(120.0, tasks / 20)
        wait_for(lambda: finished_count() >= tasks, "the tasks", deadline, workers)
        done = 50 * count + tasks
        wait_for(lambda: rows_in(TaskState.SUCCESS, queue) >= done, "SUCCESS rows", deadline,
                 workers)  # fmt: skip
        elapsed = time.perf_counter() - started
        ran = cluster.cpu_seconds()
        run_worker = worker_cpu(workers) - cpu_before
    finally:
        for process, _ in workers:
            stop(process)
    return Step(
        workers=count,
        tasks_per_second=tasks / elapsed,
        publish_pg_ms=(published - before) * 1000 / tasks,
        run_pg_ms=(ran - published) * 1000 / tasks,
        run_worker_ms=run_worker * 1000 / tasks,
    )


def report(steps: list[Step]) -> None:
    cores = os.cpu_count() or 1
    print(
        f"\nseparate Celery workers, each prefork -c 1 (a consumer + a pool process); "
        f"{cores} cores here"
    )
    print(
        f"{'workers':>7} {'tasks/s':>9} {'pg ms/task':>11} {'(publish':>9} {'+ run)':>7} "
        f"{'worker ms/task':>15}"
    )
    for step in steps:
        over = step.workers > cores
        note = f"  oversubscribed: {step.workers} workers on {cores} cores" if over else ""
        print(
            f"{step.workers:>7} {step.tasks_per_second:>9.1f} {step.pg_ms:>11.3f} "
            f"{step.publish_pg_ms:>9.3f} {step.run_pg_ms:>7.3f} {step.run_worker_ms:>15.3f}{note}"
        )
    costs = [s.pg_ms for s in steps if s.pg_ms > 0]
    if costs:
        middle = statistics.median(costs)
        print(
            f"\ntasks/s per PostgreSQL core (1000 / pg ms per task): {1000 / middle:.0f} "
            f"(median cost {middle:.3f} ms/task; {1000 / max(costs):.0f}-{1000 / min(costs):.0f} "
            "over the steps)"
        )
    print(
        "The workers and PostgreSQL share this machine's cores: with more worker processes "
        "than cores the tasks/s stop growing; the per-core estimate is the ceiling of "
        "adding workers on other machines."
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=3000, help="timed tasks per step")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--pg-bin", help="folder of initdb and pg_ctl")
    args = parser.parse_args()
    try:
        args.counts = [int(n) for n in args.workers.split(",")]
    except ValueError:
        parser.error("--workers: whole numbers, comma-separated (1,2,4)")
    if args.tasks < 1 or not args.counts or min(args.counts) < 1:
        parser.error("--tasks and every worker count must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    bin_dir = _postgres_bin(args.pg_bin)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    atexit.register(stop_all)
    log_dir = Path(tempfile.mkdtemp(prefix="taskboard-throughput-"))
    run_id = uuid.uuid4().hex[:8]
    cluster = start_cluster(bin_dir)
    redis_url = start_redis(log_dir)
    os.environ.update(environment(cluster, redis_url, f"taskboard-bench:{run_id}:done"))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    steps = []
    for count in args.counts:
        step = run_step(count, args.tasks, cluster, log_dir, run_id)
        print(f"{count} workers: {step.tasks_per_second:.1f} tasks/s", flush=True)
        steps.append(step)
    report(steps)
    print(f"logs: {log_dir}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted: workers, redis-server and the cluster were stopped")
