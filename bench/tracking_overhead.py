"""How much throughput does taskboard's automatic tracking cost? A benchmark, not a test.

Runs N noop tasks through a real Celery worker (prefork, 2 processes) on Redis +
PostgreSQL in three modes, interleaved over a few rounds, and reports the best throughput
of each mode and its ratio to "untracked":

- untracked: TASKBOARD_ENABLED=0, no result backend;
- tracked:   TASKBOARD_ENABLED=1 in the worker and in this (publishing) process;
- reference: TASKBOARD_ENABLED=0, django-celery-results' ``django-db`` result backend.

Usage, from the repository root::

    .venv/bin/python bench/tracking_overhead.py [--tasks N] [--rounds R]
        [--database-url URL] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import atexit
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/taskboard_bench"
WARMUP = 200
BAR = 0.90  # DESIGN.md: tracked ÷ untracked noop throughput ≥ 0.90
LOG_PROBLEM = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback")


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of one process (Linux /proc), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _processes_named(*names: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith(names):
                pids.append(int(entry.name))
    return pids


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def _backends_of(database_url: str) -> list[int]:
    """The server processes serving the benchmark's database (not the other databases of a
    shared server), asked from the maintenance database."""
    name = urlsplit(database_url).path.lstrip("/")
    admin_url = urlsplit(database_url)._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        query = "SELECT pid FROM pg_stat_activity WHERE datname = %s"
        return [int(pid) for (pid,) in conn.execute(query, [name])]


@dataclass
class CpuMeter:
    """CPU seconds spent by this process, the worker tree, PostgreSQL (the backends of the
    benchmark's database: a backend that ends meanwhile is missed, the benchmark's own
    connections last the whole batch) and Redis."""

    worker_pid: int
    database_url: str
    start: dict[str, float] | None = None
    backends: dict[int, float] = field(default_factory=dict)
    started_backends: dict[int, float] = field(default_factory=dict)

    def sample(self) -> dict[str, float]:
        worker = [self.worker_pid, *_children_of(self.worker_pid)]
        self.backends = {pid: _cpu_of(pid) for pid in _backends_of(self.database_url)}
        return {
            "publisher": time.process_time(),
            "worker": sum(_cpu_of(p) for p in worker),
            "redis": sum(_cpu_of(p) for p in _processes_named("redis-server")),
        }

    def begin(self) -> None:
        self.start = self.sample()
        self.started_backends = self.backends

    def per_task_ms(self, tasks: int) -> dict[str, float]:
        assert self.start is not None
        end = self.sample()
        spent = {k: (end[k] - self.start[k]) * 1000 / tasks for k in end}
        postgres = sum(
            cpu - self.started_backends.get(pid, 0.0) for pid, cpu in self.backends.items()
        )
        return {**spent, "postgres": postgres * 1000 / tasks}


@dataclass(frozen=True)
class Mode:
    name: str
    tracking: bool
    result_backend: str = ""


MODES = (Mode("untracked", False), Mode("tracked", True), Mode("reference", False, "django-db"))

# --- Child processes (the private redis-server and the workers) ---------------------------

Process = subprocess.Popen[bytes]
_children: list[Process] = []


def spawn(command: list[str], log: Path, env: dict[str, str] | None = None) -> Process:
    with log.open("ab") as out:
        # Own session: Ctrl-C reaches only this process, which then stops its children.
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children.append(process)
    return process


def stop(process: Process, timeout: float = 20.0) -> None:
    """SIGTERM (a Celery worker's warm shutdown), then SIGKILL to its whole process group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the group is the worker and its pool
            process.wait()
    if process in _children:
        _children.remove(process)


def stop_all() -> None:
    for process in reversed(_children[:]):
        stop(process, timeout=10.0)


def start_redis(log_dir: Path) -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port)]
    process = spawn([*command, "--save", "", "--appendonly", "no"], log_dir / "redis.log")
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return url
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start, see {log_dir}") from None
            time.sleep(0.05)


# --- Database -----------------------------------------------------------------------------


def recreate_database(database_url: str) -> None:
    """A new, empty benchmark database: the schema is exactly what the migrations make now."""
    name = urlsplit(database_url).path.lstrip("/")
    admin_url = urlsplit(database_url)._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        database = sql.Identifier(name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(database))


def truncate() -> None:
    from django.db import connection
    from django_celery_results.models import TaskResult

    from taskboard.models import TaskExecution

    tables = f"{TaskExecution._meta.db_table}, {TaskResult._meta.db_table}"
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} CASCADE")


def row_counts() -> dict[str, tuple[int, int]]:
    """(rows, SUCCESS rows) of taskboard's table and of django-celery-results' table."""
    from django_celery_results.models import TaskResult

    from taskboard.models import TaskExecution, TaskState

    executions = TaskExecution.objects.all()
    results = TaskResult.objects.all()
    return {
        "TaskExecution": (executions.count(), executions.filter(state=TaskState.SUCCESS).count()),
        "TaskResult": (int(results.count()), int(results.filter(status="SUCCESS").count())),
    }


# --- The benchmark ------------------------------------------------------------------------


@dataclass
class Bench:
    tasks: int
    database_url: str
    redis_url: str
    counter_key: str
    log_dir: Path
    run_id: str
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_by_mode: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """Environment shared by this process and the workers."""
        pythonpath = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        return {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "DATABASE_URL": self.database_url,
            "CONN_MAX_AGE": "60",
            "CELERY_BROKER_URL": self.redis_url,
            "CELERY_RESULT_BACKEND": "",
            "TASKBOARD_ENABLED": "0",
            # Production-like: DEBUG would log every SQL query of every process.
            "DEBUG": "0",
            "SECRET_KEY": "taskboard-benchmark-only",
            "LOG_LEVEL": "WARNING",
            "BENCH_REDIS_URL": self.redis_url,
            "BENCH_COUNTER_KEY": self.counter_key,
        }

    def start_worker(self, mode: Mode, round_no: int) -> tuple[Process, str, str]:
        name = f"bench-{mode.name}@{socket.gethostname()}"
        queue = f"bench.{self.run_id}.{mode.name}.{round_no}"
        env = {
            **os.environ,
            **self.env(),
            "CELERY_RESULT_BACKEND": mode.result_backend,
            "TASKBOARD_ENABLED": "1" if mode.tracking else "0",
        }
        command = [
            sys.executable, "-m", "celery", "-A", "sgm", "worker", "-P", "prefork", "-c", "2",
            "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-I", "bench.tasks", "-n", name, "-Q", queue,
        ]  # fmt: skip
        log = self.log_dir / f"worker-{mode.name}-{round_no}.log"
        return spawn(command, log, env), name, queue

    def wait_ready(self, worker: Process, name: str) -> None:
        from sgm.celery import app

        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[name], timeout=0.5):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} did not start, see {self.log_dir}")

    def run_batch(self, n: int, queue: str, worker: Process, durable_rows: int = 0) -> float:
        """Publish n tasks and wait until all ran and, with tracking, until durable_rows
        TaskExecution rows are SUCCESS (taskboard writes behind: its writes count too).
        The elapsed seconds."""
        from bench.tasks import finished_count, noop, reset_count
        from taskboard.models import TaskExecution, TaskState

        def recorded() -> bool:
            done = TaskExecution.objects.filter(state=TaskState.SUCCESS).count()
            return done >= durable_rows

        reset_count()
        deadline = time.monotonic() + max(120.0, n / 10)
        meter = CpuMeter(worker.pid, self.database_url)
        meter.begin()
        started = time.perf_counter()
        for _ in range(n):
            noop.apply_async(queue=queue)
        while finished_count() < n:
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{n} tasks did not finish on {queue}, see {self.log_dir}")
            time.sleep(0.01)  # coarse enough not to steal CPU from the worker
        while durable_rows and not recorded():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tracking rows of {queue} incomplete, see {self.log_dir}")
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        self.cpu = meter.per_task_ms(n)
        return elapsed

    def run_mode(self, mode: Mode, round_no: int) -> float:
        """One mode on a fresh worker and empty tables: throughput in tasks/s."""
        from django.test import override_settings

        truncate()
        worker, name, queue = self.start_worker(mode, round_no)
        try:
            self.wait_ready(worker, name)
            # The publisher writes the PENDING rows: tracking on or off here as well.
            with override_settings(TASKBOARD_ENABLED=mode.tracking):
                tracked = mode.tracking
                self.run_batch(WARMUP, queue, worker, WARMUP if tracked else 0)
                elapsed = self.run_batch(
                    self.tasks, queue, worker, WARMUP + self.tasks if tracked else 0
                )
                self.cpu_by_mode.setdefault(mode.name, []).append(self.cpu)
        finally:
            stop(worker)  # a warm shutdown: flushes anything tracking still buffers
        return self.tasks / elapsed

    def check_rows(self, mode: Mode) -> list[str]:
        """Each mode must have written exactly its own durable records, all SUCCESS."""
        expected = self.tasks + WARMUP
        own = {"tracked": "TaskExecution", "reference": "TaskResult"}.get(mode.name)
        problems = []
        for table, (rows, successes) in row_counts().items():
            want = expected if table == own else 0
            if rows != want or successes != want:
                expectation = f"{want}, all SUCCESS" if want else "none"
                problems.append(
                    f"WARNING: {mode.name}: {rows} {table} rows ({successes} SUCCESS), "
                    f"expected {expectation}"
                )
        return problems


def log_problems(log_dir: Path) -> list[str]:
    return [
        f"{log.name}: {line.strip()}"
        for log in sorted(log_dir.glob("*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if LOG_PROBLEM.search(line)
    ]


def report_cpu(cpu_by_mode: dict[str, list[dict[str, float]]]) -> None:
    """Median CPU milliseconds per task, by process group: where each mode spends."""
    groups = ("publisher", "worker", "postgres", "redis")
    print(f"\n{'cpu ms/task':<11}" + "".join(f"{g:>10}" for g in (*groups, "total")))
    for mode, samples in cpu_by_mode.items():
        median = [statistics.median(sample[g] for sample in samples) for g in groups]
        print(f"{mode:<11}" + "".join(f"{v:>10.2f}" for v in (*median, sum(median))))


def report(results: dict[str, list[float]], problems: list[str], log_dir: Path) -> None:
    """Best throughput per mode, and the ratios to untracked. The verdict uses the median of
    each round's own ratio (modes of one round ran minutes apart, rounds may not): on a
    shared machine that is steadier than a ratio of two bests."""
    best = {mode: max(figures) for mode, figures in results.items()}
    paired = {
        mode: statistics.median(f / u for f, u in zip(figures, results["untracked"], strict=True))
        for mode, figures in results.items()
    }
    print(
        f"\n{'mode':<11} {'best/s':>8} {'best ratio':>11} {'median ratio':>13}   rounds (tasks/s)"
    )
    for mode, figures in results.items():
        rounds = ", ".join(f"{f:.1f}" for f in figures)
        ratio = best[mode] / best["untracked"]
        print(f"{mode:<11} {best[mode]:>8.1f} {ratio:>11.2f} {paired[mode]:>13.2f}   {rounds}")
    verdict = "PASS" if paired["tracked"] >= BAR else "FAIL"
    print(
        f"\ntracked/untracked = {paired['tracked']:.2f} (median of rounds; bar >= {BAR:.2f}): "
        f"{verdict}"
    )
    print(f"reference/untracked = {paired['reference']:.2f}")
    beats = "yes" if paired["tracked"] > paired["reference"] else "no"
    print(f"tracked above reference: {beats}")
    lines = log_problems(log_dir)
    print(f"\nlogs: {log_dir} ({len(lines)} ERROR/CRITICAL/Traceback lines)")
    for line in lines[:10]:
        print(f"  {line}")
    for problem in problems:
        print(problem)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=3000, help="timed tasks per mode and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the three modes")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", help="an existing Redis (default: a private one)")
    args = parser.parse_args()
    if args.tasks < 1 or args.rounds < 1:
        parser.error("--tasks and --rounds must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    # Run as a script, sys.path[0] is bench/; the project's packages live at the root.
    sys.path[:1] = [str(REPO_ROOT)]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    atexit.register(stop_all)
    log_dir = Path(tempfile.mkdtemp(prefix="taskboard-bench-"))
    run_id = uuid.uuid4().hex[:8]
    try:
        redis_url = args.redis_url or start_redis(log_dir)
        counter_key = f"taskboard-bench:{run_id}:done"
        bench = Bench(args.tasks, args.database_url, redis_url, counter_key, log_dir, run_id)
        recreate_database(bench.database_url)
        os.environ.update(bench.env())  # before Django and Celery read their settings
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)

        results: dict[str, list[float]] = {mode.name: [] for mode in MODES}
        problems: list[str] = []
        for round_no in range(1, args.rounds + 1):
            # Rotate the order, so no mode always runs first (or right after another).
            shift = (round_no - 1) % len(MODES)
            for mode in MODES[shift:] + MODES[:shift]:
                results[mode.name].append(bench.run_mode(mode, round_no))
                problems += bench.check_rows(mode)
            figures = "  ".join(f"{m}: {f[-1]:.1f}/s" for m, f in results.items())
            print(f"round {round_no}: {figures}", flush=True)
        report(results, problems, log_dir)
        report_cpu(bench.cpu_by_mode)
        return 1 if problems else 0
    finally:
        stop_all()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted: workers and the private redis-server were stopped")
