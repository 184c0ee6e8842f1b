"""The dashboard at scale: how fast are its pages and fragments with N realistic rows? A
benchmark, not a test (issue 12).

For each N it loads N executions into a scratch PostgreSQL database with COPY (modules,
owners, states, tracebacks, children, notifications), serves the app with gunicorn as
docker-compose.yml does (3 sync workers, DEBUG off, a fresh database connection per
request), and prints, for every fragment, search, sort link, deep page and the module
page: p50 / p95 of 20 timed requests and the queries each makes (counted in this process
with Django's test client, on the same database). Then an idle poll (bytes and queries), and
optionally a bounded load step: K open dashboards polling every 5 s, K raised until p95
passes 200 ms.

Usage, from the repository root (make bench-dashboard)::

    .venv/bin/python bench/dashboard_scale.py [--rows 10000,1000000] [--requests 20]
        [--load] [--database-url URL]
"""

from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import psycopg
import requests
from psycopg import sql

if TYPE_CHECKING:
    from django.test import Client

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/taskboard_dashboard_bench"
PASSWORD = "bench-pass-123"
MODULES = ("nomina", "contabilidad", "compras", "ventas", "almacen", "rrhh", "tesoreria")
LABELS = {
    "nomina": ("Consolidar nómina", "Calcular retenciones", "Generar recibos"),
    "contabilidad": ("Cierre mensual", "Conciliar bancos", "Libro diario"),
    "compras": ("Importar pedidos", "Valorar albaranes"),
    "ventas": ("Facturar clientes", "Remesas de cobro"),
    "almacen": ("Recuento de stock", "Reposición"),
    "rrhh": ("Altas y bajas", "Vacaciones"),
    "tesoreria": ("Previsión de tesorería",),
}
OWNERS = 40
DAYS = 90
TRACEBACK = "".join(
    f'  File "/app/sgm/{m}/tasks.py", line {n}, in run\n    total += linea.importe\n'
    for m, n in zip(MODULES * 3, range(40, 61), strict=False)
)
TARGET_P95_MS = 200.0
_children: list[subprocess.Popen[bytes]] = []


# --- Data ---------------------------------------------------------------------------------


def recreate_database(url: str) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def columns_of(conn: psycopg.Connection[Any], table: str) -> list[tuple[str, str, bool]]:
    rows = conn.execute(
        "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns"
        " WHERE table_name = %s ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [(name, kind, nullable) for name, kind, nullable in rows]


def blank(kind: str, nullable: bool) -> Any:
    if nullable:
        return None
    if kind in ("integer", "smallint", "bigint", "double precision"):
        return 0
    if kind == "boolean":
        return False
    return ""


def execution_rows(n: int, owner_ids: list[int], rng: random.Random) -> Any:
    """n executions over the last DAYS days, newest last; ~2 % still active, 5 % failed,
    1 % lost, 2 % revoked; one in ten launched by a parent task."""
    now = datetime.now(UTC)
    start = now - timedelta(days=DAYS)
    span = (now - start).total_seconds()
    parents: list[str] = []
    for i in range(n):
        module = MODULES[i % len(MODULES)] if rng.random() < 0.7 else rng.choice(MODULES)
        label = rng.choice(LABELS[module])
        created = start + timedelta(seconds=span * i / n)
        roll = rng.random()
        if i > n - 50 and roll < 0.6:
            state = rng.choice(("PENDING", "RECEIVED", "STARTED", "PROGRESS"))
        elif roll < 0.05:
            state = "FAILURE"
        elif roll < 0.06:
            state = "LOST"
        elif roll < 0.08:
            state = "REVOKED"
        else:
            state = "SUCCESS"
        task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        duration = round(rng.lognormvariate(2.0, 1.0), 3)
        started = created + timedelta(seconds=rng.random() * 2)
        finished = started + timedelta(seconds=duration)
        terminal = state in ("SUCCESS", "FAILURE", "LOST", "REVOKED")
        parent = rng.choice(parents) if parents and rng.random() < 0.1 else ""
        if not parent and rng.random() < 0.05:
            parents.append(task_id)
            parents[:] = parents[-500:]
        yield {
            "task_id": task_id,
            "task_name": f"sgm.{module}.tasks.{label.split()[0].lower()}",
            "display_name": label,
            "module": module,
            "user_id": rng.choice(owner_ids) if rng.random() < 0.9 else None,
            "state": state,
            "progress": 100 if state == "SUCCESS" else rng.randint(0, 99),
            "progress_message": "" if terminal else f"Línea {rng.randint(1, 9000)}",
            "args_summary": "[]",
            "kwargs_summary": f"{{'periodo': '2026-{rng.randint(1, 12):02d}'}}",
            "result_summary": f"{{'filas': {rng.randint(1, 5000)}}}" if state == "SUCCESS" else "",
            "exception_type": "ValueError" if state == "FAILURE" else "",
            "exception_message": "Importe negativo en la línea 42" if state == "FAILURE" else "",
            "traceback": TRACEBACK if state == "FAILURE" else "",
            "worker": f"celery@web{rng.randint(1, 4)}",
            "queue": "celery",
            "parent_task_id": parent,
            "root_task_id": parent,
            "created_at": created,
            "updated_at": finished if terminal else started,
            "received_at": created,
            "started_at": started if state not in ("PENDING", "RECEIVED") else None,
            "finished_at": finished if terminal else None,
            "lost_at": finished if state == "LOST" else None,
            "duration": duration if state in ("SUCCESS", "FAILURE") else None,
        }


def load(url: str, n: int) -> dict[str, Any]:
    """Migrate the scratch database, create the users, COPY n executions and their
    notifications. Returns what the timed requests need."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    users = get_user_model()
    admin = users.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    owners = [users.objects.create_user(f"user{i}", password=PASSWORD) for i in range(OWNERS)]
    rng = random.Random(n)
    began = time.monotonic()
    with psycopg.connect(url) as conn:
        cols = columns_of(conn, "taskboard_taskexecution")
        names = [c for c, _k, _n in cols if c != "id"]
        defaults = {c: blank(k, nullable) for c, k, nullable in cols}
        with conn.cursor() as cur:
            statement = sql.SQL("COPY taskboard_taskexecution ({}) FROM STDIN").format(
                sql.SQL(", ").join(map(sql.Identifier, names))
            )
            with cur.copy(statement) as copy:
                for row in execution_rows(n, [o.pk for o in owners], rng):
                    copy.write_row([row.get(c, defaults[c]) for c in names])
        ncols = columns_of(conn, "taskboard_tasknotification")
        nnames = [c for c, _k, _n in ncols if c != "id"]
        ndefaults = {c: blank(k, nullable) for c, k, nullable in ncols}
        with conn.cursor() as cur:
            # One notification per finished, owned execution in ten; the newest unread.
            cur.execute(
                "SELECT id, user_id, state, display_name, finished_at FROM taskboard_taskexecution"
                " WHERE user_id IS NOT NULL AND finished_at IS NOT NULL AND id % 10 = 0"
            )
            found = cur.fetchall()
            statement = sql.SQL("COPY taskboard_tasknotification ({}) FROM STDIN").format(
                sql.SQL(", ").join(map(sql.Identifier, nnames))
            )
            horizon = datetime.now(UTC) - timedelta(days=2)
            with cur.copy(statement) as copy:
                for pk, user_id, state, label, finished in found:
                    level = {"SUCCESS": "success", "FAILURE": "error", "LOST": "error"}
                    values = {
                        "user_id": user_id,
                        "execution_id": pk,
                        "level": level.get(state, "warning"),
                        "message": f"«{label}» {state.lower()}",
                        "state": state,
                        "created_at": finished,
                        "read_at": None if finished > horizon else finished,
                    }
                    copy.write_row([values.get(c, ndefaults[c]) for c in nnames])
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        # As autovacuum leaves a table that has settled: statistics, and the visibility map
        # that lets a covering index answer without reading the table.
        conn.execute("VACUUM ANALYZE")
    connection.close()
    print(f"  loaded {n:,} executions in {time.monotonic() - began:.0f} s", flush=True)
    return {"admin": admin, "owner": owners[0]}


# --- Serving ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


STATIC_ROOT = REPO_ROOT / "var" / "bench-static"


def serve(url: str, port: int, log: Path, *, conn_max_age: int = 0) -> subprocess.Popen[bytes]:
    """gunicorn as compose runs it; conn_max_age 0 (a fresh connection per request, the
    worst honest case) unless asked for settings' default (60: kept)."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DEBUG": "0",
        "SECRET_KEY": "bench-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CONN_MAX_AGE": str(conn_max_age),
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "STATIC_ROOT": str(STATIC_ROOT),  # collected as the image's build does
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
    )
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "sgm.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "3",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children.append(process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=10)
            return process
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer on port {port}; see {log}")


def stop_children() -> None:
    for process in _children:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def logged_in(base: str, username: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/accounts/login/", timeout=10)
    token = session.cookies.get("csrftoken", "")
    answer = session.post(
        f"{base}/accounts/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": page.url},
        timeout=10,
    )
    if "sessionid" not in session.cookies:
        raise SystemExit(
            f"could not log in as {username}: {answer.status_code} {answer.text[:3000]}"
        )
    return session


# --- Measuring ----------------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    p50: float
    p95: float  # through gunicorn, a fresh connection per request
    queries: int
    size: int
    status: int
    server: float  # p95 in this process: Django's own time, no HTTP, a kept connection
    kept: float = float("nan")  # p95 through gunicorn with connections kept (CONN_MAX_AGE=60)


HX = {"HX-Request": "true"}


def requests_to_time(owner: str) -> list[tuple[str, str, str, dict[str, str]]]:
    """(name, user, path, headers) of every request the table shows."""
    sorts = ["label", "-label", "module", "-module", "started_at", "-started_at", "duration"]
    sorts += ["-duration"]
    found = [
        ("list fragment, default", "admin", "/tasks/fragments/list/", HX),
        ("list, plain user", owner, "/tasks/fragments/list/", HX),
        ("list, ?q= found", "admin", "/tasks/fragments/list/?q=nómina", HX),
        ("list, ?q= nowhere", "admin", "/tasks/fragments/list/?q=zzxqwy", HX),
        (
            "list, filter module+state",
            "admin",
            "/tasks/fragments/list/?module=nomina&state=FAILURE",
            HX,
        ),
        ("list, deep page 2000", "admin", "/tasks/fragments/list/?page=2000", HX),
    ]
    found += [(f"list, ?sort={s}", "admin", f"/tasks/fragments/list/?sort={s}", HX) for s in sorts]
    found += [
        ("dashboard page", "admin", "/tasks/", {}),
        ("module page nomina", "admin", "/tasks/modules/nomina/", {}),
        ("stats fragment", "admin", "/tasks/fragments/stats/", HX),
        ("workers fragment", "admin", "/tasks/fragments/workers/", HX),
        ("bell fragment", owner, "/tasks/notifications/bell/", HX),
        ("executions API", "admin", "/api/tasks/executions/", {}),
    ]
    return found


def queries_of(
    username: str,
    path: str,
    headers: dict[str, str],
    *,
    settle: Callable[[Client], dict[str, str]] | None = None,
) -> tuple[int, int, int, float]:
    """(queries, bytes, status, server p95 ms) of one request, in this process on the same
    database, after a warming one (first-request caches); the p95 of SERVER_TIMED more (the
    app's own time, without HTTP). `settle`, if given, warms the logged-in client instead
    and returns the headers of the request measured (an idle poll's own stamp)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    if settle is None:
        client.get(path, headers=headers)  # warm: first-request caches
    else:
        headers = settle(client)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, headers=headers)
    made = len(queries)  # now: the log it reads is a ring the timed requests below move
    times = []
    for _ in range(SERVER_TIMED):
        began = time.perf_counter()
        client.get(path, headers=headers)
        times.append((time.perf_counter() - began) * 1000)
    return made, len(response.content), response.status_code, p95(times)


SERVER_TIMED = 10


def settled_poll(path: str, element: str) -> Callable[[Client], dict[str, str]]:
    """The settle step of an idle poll: poll until the answer is 204 (the first answers
    render; the workers snapshot settles), each time sending back the client's own session's
    stamp (each viewer's stamp is its own); the headers of the next, idle, poll."""

    def settle(client: Client) -> dict[str, str]:
        stamp = None
        for _ in range(5):
            answer = client.get(path, headers=poll_headers(element, stamp))
            if answer.status_code == 204:
                break
            stamp = stamp_in(answer.content)
        return poll_headers(element, stamp)

    return settle


def time_one(session: requests.Session, url: str, headers: dict[str, str], n: int) -> list[float]:
    for _ in range(2):
        session.get(url, headers=headers, timeout=30)
    times = []
    for _ in range(n):
        began = time.perf_counter()
        session.get(url, headers=headers, timeout=30)
        times.append((time.perf_counter() - began) * 1000)
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def measure(base: str, owner: str, n: int, *, in_process: bool = True) -> list[Figure]:
    """Every request of requests_to_time through `base`; in_process: also its queries, bytes
    and the app's own time, in this process (else only the HTTP figures)."""
    sessions = {"admin": logged_in(base, "admin"), owner: logged_in(base, owner)}
    figures = []
    for name, user, path, headers in requests_to_time(owner):
        times = time_one(sessions[user], base + path, headers, n)
        queries, size, status, server = (
            queries_of(user, path, headers) if in_process else NOT_COUNTED
        )
        figures.append(
            Figure(name, statistics.median(times), p95(times), queries, size, status, server)
        )
    return figures


NOT_COUNTED = (0, 0, 0, float("nan"))  # (queries, bytes, status, server ms) not measured


# What an open dashboard polls every 5 s: (path, the element whose poll it is). The first
# three send back their change stamp (views/polls.py) and get 204 while nothing changed.
DASHBOARD_POLLS = [
    ("/tasks/fragments/list/", "task-list"),
    ("/tasks/fragments/stats/", "stats-panel"),
    ("/tasks/fragments/headline/", "headline"),
    ("/tasks/notifications/bell/", "notification-bell"),
    ("/tasks/fragments/workers/", "workers-panel"),
]
PULSE = ("/tasks/fragments/pulse/", "taskboard-pulse")  # the dashboard's one poll
STAMP = re.compile(rb'data-taskboard-stamp="([^"]+)"')


def poll_headers(element: str, stamp: str | None) -> dict[str, str]:
    headers = {**HX, "HX-Trigger": element}
    if stamp:
        headers["X-Taskboard-Stamp"] = stamp
    return headers


def stamp_in(body: bytes) -> str | None:
    found = STAMP.search(body)
    return found.group(1).decode() if found else None


def measure_idle_polls(base: str, n: int, *, in_process: bool = True) -> list[Figure]:
    """A stamped panel's poll while nothing changes: time, bytes, queries (the stamp
    read back from the panel's own render, as taskboard.js sends it); in_process: as in
    measure()."""
    session = logged_in(base, "admin")
    figures = []
    for path, element in [PULSE, *DASHBOARD_POLLS[:3]]:
        stamp = stamp_in(session.get(base + path, headers=poll_headers(element, None)).content)
        headers = poll_headers(element, stamp)
        times = time_one(session, base + path, headers, n)
        settle = settled_poll(path, element)
        queries, size, status, server = (
            queries_of("admin", path, headers, settle=settle) if in_process else NOT_COUNTED
        )
        name = f"idle poll {element}"
        figures.append(
            Figure(name, statistics.median(times), p95(times), queries, size, status, server)
        )
    return figures


def load_step(base: str, dashboards: int, seconds: float = 20.0) -> tuple[float, int, float]:
    """(p95 ms of every request, requests made, share answered 204) while `dashboards`
    open dashboards run as the browser runs them: each sends its pulse every 5 s (spread
    evenly) with the stamp it holds, and when the pulse says something changed, asks its
    five panels again (each with its own stamp: an unchanged one answers 204). Nothing
    writes meanwhile, but each viewer's stamp bucket still turns once a minute, and then
    that dashboard renders its panels again."""
    sessions = [logged_in(base, "admin").cookies.get_dict() for _ in range(min(dashboards, 20))]
    stamps: dict[tuple[int, str], str | None] = {}
    interval = 5.0 / dashboards
    times: list[float] = []
    unchanged = 0
    lock = threading.Lock()

    def one(dashboard: int, path: str, element: str) -> bool:
        """One request; whether it said something changed (a pulse's HX-Trigger)."""
        nonlocal unchanged
        headers = poll_headers(element, stamps.get((dashboard, element)))
        cookies = sessions[dashboard % len(sessions)]
        began = time.perf_counter()
        answer = requests.get(base + path, headers=headers, cookies=cookies, timeout=30)
        elapsed = (time.perf_counter() - began) * 1000
        with lock:
            times.append(elapsed)
            if answer.status_code == 204:
                unchanged += 1
            else:
                stamps[(dashboard, element)] = stamp_in(answer.content)
        return "HX-Trigger" in answer.headers

    def beat(pool: concurrent.futures.Executor, dashboard: int) -> None:
        if one(dashboard, *PULSE):
            for path, element in DASHBOARD_POLLS:
                pool.submit(one, dashboard, path, element)

    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        # Unmeasured: each dashboard's page load (its panels' first renders and stamps).
        first = [(d, path, element) for d in range(dashboards) for path, element in DASHBOARD_POLLS]
        list(pool.map(lambda poll: one(*poll), first + [(d, *PULSE) for d in range(dashboards)]))
        times.clear()
        unchanged = 0
        began = time.monotonic()
        i = 0
        while time.monotonic() - began < seconds:
            due = began + i * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(beat, pool, i % dashboards)
            i += 1
    if not times:
        return float("inf"), 0, 0.0
    return p95(times), len(times), unchanged / len(times)


def print_table(rows: int, figures: list[Figure]) -> None:
    print(f"\n  {rows:,} rows")
    print("  (ms; p95 through gunicorn with a fresh connection per request, then with connections")
    print("  kept as settings do by default, then of the app alone in this process)")
    print(
        f"  {'request':34} {'p50':>7} {'p95':>7} {'kept':>7} {'server':>7}"
        f" {'queries':>7} {'bytes':>7} {'status':>6}"
    )
    for f in figures:
        print(
            f"  {f.name:34} {f.p50:7.1f} {f.p95:7.1f} {f.kept:7.1f} {f.server:7.1f}"
            f" {f.queries:7d} {f.size:7d} {f.status:6d}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="10000,1000000")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--load", action="store_true", help="also the open-dashboards step")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    args = parser.parse_args()
    sizes = [int(s) for s in args.rows.split(",")]

    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sgm.settings")
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    sys.path.insert(0, str(REPO_ROOT))
    atexit.register(stop_children)
    log = REPO_ROOT / "var" / "bench-dashboard.log"
    log.parent.mkdir(exist_ok=True)
    results: dict[int, list[Figure]] = {}
    for n in sizes:
        print(
            f"\nloading {n:,} rows into {urlsplit(args.database_url).path.lstrip('/')}", flush=True
        )
        recreate_database(args.database_url)
        import django
        from django.db import connections

        django.setup()
        connections.close_all()
        users = load(args.database_url, n)
        port = free_port()
        server = serve(args.database_url, port, log)
        base = f"http://127.0.0.1:{port}"
        results[n] = measure(base, users["owner"].username, args.requests)
        results[n] += measure_idle_polls(base, args.requests)
        kept_port = free_port()
        kept_server = serve(args.database_url, kept_port, log, conn_max_age=60)
        kept_base = f"http://127.0.0.1:{kept_port}"
        kept = measure(kept_base, users["owner"].username, args.requests, in_process=False)
        kept += measure_idle_polls(kept_base, args.requests, in_process=False)
        os.killpg(kept_server.pid, signal.SIGTERM)
        kept_server.wait(10)
        results[n] = [replace(f, kept=k.p95) for f, k in zip(results[n], kept, strict=True)]
        print_table(n, results[n])
        if args.load:
            for dashboards in (100, 250, 500, 750, 1000):
                seen, made, idle = load_step(base, dashboards)
                print(
                    f"  {dashboards:5d} open dashboards: p95 {seen:7.1f} ms"
                    f" ({made} requests in 20 s, {idle:.0%} answered 204)",
                    flush=True,
                )
                if seen > TARGET_P95_MS:
                    break
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
        connections.close_all()
    if len(sizes) > 1:
        small, large = results[sizes[0]], results[sizes[-1]]
        print(f"\n  p95 ratio {sizes[-1]:,} ÷ {sizes[0]:,} (fresh connections, kept, server)")
        for a, b in zip(small, large, strict=True):
            print(
                f"  {a.name:34} {b.p95 / a.p95:6.2f} {b.kept / a.kept:6.2f}"
                f" {b.server / a.server:6.2f}"
            )


if __name__ == "__main__":
    main()
