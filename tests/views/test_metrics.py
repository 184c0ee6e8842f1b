"""/metrics: Prometheus's text format parsed back with prometheus_client's own parser, after
real tasks ran on a real worker; counters that never go back (prune, bulk delete, the admin,
a restart, a LOST task its worker later finished); who may read it; what a scrape costs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.db import OperationalError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from taskboard.models import (
    DURATION_BUCKETS,
    TERMINAL_STATES,
    DeletedExecutionTotal,
    TaskExecution,
    TaskState,
    WorkerHeartbeat,
)
from taskboard.services.bulk import executions_delete
from taskboard.services.retention import executions_prune
from taskboard.tracking.figures import worker_figures
from taskboard.tracking.heartbeats import Beat, record
from taskboard.tracking.recorder import Write, buffer
from taskboard.views import metrics as metrics_view
from taskboard.views.metrics import METRICS_KEY
from tests import worker_tasks
from tests.factories import client_for, make_execution, make_user
from tests.processes import ROOT, database_url, wait_until

TOKEN = "scrape-token-" + "x" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Families = dict[str, Any]

# Every name and label set the README documents (checked against the README too).
DOCUMENTED: dict[str, tuple[str, set[str]]] = {
    "taskboard_tasks_finished": ("counter", {"module", "task_name", "state"}),
    "taskboard_tasks_lost": ("counter", {"module", "task_name"}),
    "taskboard_tasks_lost_recovered": ("counter", {"module", "task_name"}),
    "taskboard_task_duration_seconds": ("histogram", {"module", "task_name"}),
    "taskboard_tasks_running": ("gauge", {"module", "task_name"}),
    "taskboard_tasks_queued": ("gauge", {"module", "task_name"}),
    "taskboard_tasks_retrying": ("gauge", {"module", "task_name"}),
    "taskboard_tasks_oldest_queued_timestamp_seconds": ("gauge", {"module", "task_name"}),
    "taskboard_workers_online": ("gauge", set()),
    "taskboard_queue_workers_online": ("gauge", {"queue"}),
    "taskboard_queue_length": ("gauge", {"queue"}),
    "taskboard_tracking_write_lag_seconds": ("gauge", {"worker"}),
    "taskboard_tracking_pending_writes": ("gauge", {"worker"}),
    "taskboard_tracking_dropped_writes": ("counter", {"worker"}),
    "taskboard_tracking_spilled_writes": ("counter", {"worker"}),
    "taskboard_tracking_spill_files": ("gauge", set()),
    "taskboard_tracking_spill_bytes": ("gauge", set()),
    "taskboard_tracking_spill_unreadable_files": ("gauge", set()),
    "taskboard_metrics_snapshot_timestamp_seconds": ("gauge", set()),
    "taskboard_metrics_snapshot_duration_seconds": ("gauge", set()),
}


@pytest.fixture(autouse=True)
def metrics_settings(settings: Any) -> None:
    settings.TASKBOARD_METRICS_TOKEN = TOKEN
    forget_snapshot()


def forget_snapshot() -> None:
    """What a restart of every web process and of the cache would leave: nothing cached."""
    cache.delete_many([METRICS_KEY, f"{METRICS_KEY}:lock"])


def parse(text: str) -> Families:
    return {family.name: family for family in text_string_to_metric_families(text)}


def scrape(*, fresh: bool = True) -> Families:
    if fresh:
        forget_snapshot()
    response = Client().get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return parse(response.content.decode())


def value(families: Families, sample: str, **labels: str) -> float:
    """The sample's value (0 when the series is absent)."""
    family = families[re.sub(r"_(total|bucket|count|sum)$", "", sample)]
    found = [s.value for s in family.samples if s.name == sample and s.labels == labels]
    assert len(found) <= 1, found
    return float(found[0]) if found else 0.0


def counters(families: Families) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every counter and histogram sample of the executions: what must never go back. (A
    worker's tracking counters are its process's: they come with its heartbeat row and
    start again from 0 when it restarts, as Prometheus counters may.)"""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        if family.type in ("counter", "histogram")
        for sample in family.samples
        if "worker" not in sample.labels
    }


def assert_not_back(before: dict[Any, float], after: dict[Any, float]) -> None:
    went_back = {
        key: (old, after.get(key)) for key, old in before.items() if after.get(key, -1) < old
    }
    assert not went_back, went_back


def expected_from_rows() -> dict[tuple[str, str, str], int]:
    """(module, task_name, state) -> finished rows, the way the counter counts them."""
    tally: dict[tuple[str, str, str], int] = {}
    for module, name, state, lost_at in TaskExecution.objects.finished().values_list(
        "module", "task_name", "state", "lost_at"
    ):
        key = (module, name, TaskState.LOST if lost_at else state)
        tally[key] = tally.get(key, 0) + 1
    return tally


def run_tasks_on_the_worker() -> list[str]:
    results = [
        worker_tasks.add.delay(2, 3),
        worker_tasks.add.delay(4, 5),
        worker_tasks.nap.delay(1.2),
        worker_tasks.log_in_fails.delay("ana", "secret"),
    ]
    ids = [result.id for result in results]
    finished = TaskExecution.objects.filter(task_id__in=ids, state__in=sorted(TERMINAL_STATES))
    wait_until(lambda: finished.count() == len(ids), timeout=60, interval=0.2)
    # And this process's own writes (the publisher's rows) landed: nothing comes after.
    wait_until(lambda: buffer.counters()["pending"] == 0, timeout=30)
    return ids


# --- Real tasks, real worker ---------------------------------------------------------------


def test_tasks_run_by_a_worker_are_counted_with_every_documented_name(worker):
    ids = run_tasks_on_the_worker()
    # The worker records itself from its own thread, on its own schedule: the tasks may be
    # done before its first heartbeat row.
    wait_until(lambda: WorkerHeartbeat.objects.filter(stopped_at__isnull=True).exists(), 20)
    families = scrape()
    for name, (kind, labels) in DOCUMENTED.items():
        assert name in families, name
        assert families[name].type == kind, name
        for sample in families[name].samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)
    rows = {row.task_id: row for row in TaskExecution.objects.filter(task_id__in=ids)}
    add, nap, fails = rows[ids[0]], rows[ids[2]], rows[ids[3]]
    assert (add.state, nap.state, fails.state) == ("SUCCESS", "SUCCESS", "FAILURE")
    for (module, name, state), count in expected_from_rows().items():
        sample = "taskboard_tasks_finished_total"
        assert value(families, sample, module=module, task_name=name, state=state) == count
    add_labels = {"module": add.module, "task_name": add.task_name}
    assert value(families, "taskboard_tasks_finished_total", **add_labels, state="SUCCESS") == 2
    assert value(families, "taskboard_tasks_finished_total", **add_labels, state="FAILURE") == 0
    # The histogram: both adds ran in under a second; the nap between 1 and 5 seconds.
    assert value(families, "taskboard_task_duration_seconds_bucket", **add_labels, le="1.0") == 2
    assert value(families, "taskboard_task_duration_seconds_count", **add_labels) == 2
    durations = sum(rows[i].duration or 0 for i in ids[:2])
    assert value(families, "taskboard_task_duration_seconds_sum", **add_labels) == pytest.approx(
        durations
    )
    nap_labels = {"module": nap.module, "task_name": nap.task_name}
    buckets = families["taskboard_task_duration_seconds"].samples
    les = [
        s.labels["le"]
        for s in buckets
        if s.name.endswith("_bucket") and s.labels["task_name"] == nap.task_name
    ]
    assert les == [repr(bound) for bound in DURATION_BUCKETS] + ["+Inf"]
    assert value(families, "taskboard_task_duration_seconds_bucket", **nap_labels, le="1.0") == 0
    assert value(families, "taskboard_task_duration_seconds_bucket", **nap_labels, le="5.0") == 1
    fail_labels = {"module": fails.module, "task_name": fails.task_name}
    assert value(families, "taskboard_tasks_finished_total", **fail_labels, state="FAILURE") == 1
    # The worker beats: online, consuming its queue.
    online = WorkerHeartbeat.objects.filter(stopped_at__isnull=True).count()
    assert value(families, "taskboard_workers_online") == online >= 1
    assert value(families, "taskboard_queue_workers_online", queue="celery") >= 1


def heartbeat(worker) -> WorkerHeartbeat:
    return WorkerHeartbeat.objects.get(hostname=worker.name)


def test_the_heartbeat_carries_the_tracking_figures_of_every_process_of_the_worker(worker):
    wait_until(lambda: WorkerHeartbeat.objects.filter(hostname=worker.name).exists(), 20)
    before = heartbeat(worker).tracking
    written_before = before.get("written", 0)
    ids = run_tasks_on_the_worker()
    # The pool processes wrote the final states: their figures reach the main process's
    # heartbeat (through shared memory), the main process's own are added.

    def settled() -> dict[str, Any] | None:
        figures = heartbeat(worker).tracking
        done = figures.get("written", 0) >= written_before + len(ids) and not figures["pending"]
        return figures if done else None

    figures = wait_until(settled, timeout=30, interval=0.2)
    beat = heartbeat(worker)
    assert figures["processes"] == 1 + (beat.concurrency or 0) == 3  # main + the pool's 2
    assert figures["oldest_pending_seconds"] == 0  # nothing waits
    # The session's worker has served earlier tests (a terminated task's pool process takes
    # its unwritten writes with it: dropped, rightly): these tasks added none.
    assert figures["dropped"] == before.get("dropped", 0)
    assert figures["spilled"] == before.get("spilled", 0)
    assert figures["database_away"] == 0
    assert {"retried", "replayed", "outages"} <= set(figures)
    families = scrape()
    labels = {"worker": worker.name}
    for name, kind in (
        ("taskboard_tracking_write_lag_seconds", "gauge"),
        ("taskboard_tracking_pending_writes", "gauge"),
        ("taskboard_tracking_dropped_writes", "counter"),
        ("taskboard_tracking_spilled_writes", "counter"),
    ):
        assert families[name].type == kind
        assert labels in [sample.labels for sample in families[name].samples], name
    # The scrape reads the same heartbeat (a beat may have come since: still nothing waits).
    assert value(families, "taskboard_tracking_pending_writes", **labels) == 0
    assert value(families, "taskboard_tracking_write_lag_seconds", **labels) == 0
    assert (
        value(families, "taskboard_tracking_dropped_writes_total", **labels) == figures["dropped"]
    )
    assert (
        value(families, "taskboard_tracking_spilled_writes_total", **labels) == figures["spilled"]
    )


def test_a_write_waiting_in_a_buffer_is_a_lag_on_the_scrape(db):
    """This process as the worker: a write queued and not yet flushed, a beat, a scrape."""
    lookup = ("task_id", "metrics-lag")
    try:
        buffer.put(Write(lookup, TaskState.STARTED, {}), delay=600.0)
        wait_until(lambda: worker_figures()["oldest_pending_seconds"] > 0, timeout=5)
        record(Beat("in-process@host", {"tracking": worker_figures()}))
    finally:
        buffer.take(lookup)
    families = scrape()
    labels = {"worker": "in-process@host"}
    assert value(families, "taskboard_tracking_write_lag_seconds", **labels) > 0
    assert value(families, "taskboard_tracking_pending_writes", **labels) >= 1


def test_tracking_figures_are_exported_for_workers_online_or_just_stopped(db):
    """Per worker: the last heartbeat's figures; a worker long gone is not exported, one that
    stopped just now is (its last figures: what it spilled at shutdown)."""
    now = timezone.now()
    figures = {"pending": 3, "oldest_pending_seconds": 4.5, "dropped": 2, "spilled": 7}
    WorkerHeartbeat.objects.create(hostname="busy@h", tracking=figures, last_seen=now)
    WorkerHeartbeat.objects.create(
        hostname="stopped@h", tracking={"spilled": 9}, last_seen=now, stopped_at=now
    )
    WorkerHeartbeat.objects.create(hostname="older@h", last_seen=now)  # no figures yet
    WorkerHeartbeat.objects.create(
        hostname="gone@h", tracking=figures, last_seen=now - timedelta(hours=1)
    )
    families = scrape()
    busy, stopped, older = {"worker": "busy@h"}, {"worker": "stopped@h"}, {"worker": "older@h"}
    assert value(families, "taskboard_tracking_write_lag_seconds", **busy) == 4.5
    assert value(families, "taskboard_tracking_pending_writes", **busy) == 3
    assert value(families, "taskboard_tracking_dropped_writes_total", **busy) == 2
    assert value(families, "taskboard_tracking_spilled_writes_total", **busy) == 7
    assert value(families, "taskboard_tracking_spilled_writes_total", **stopped) == 9
    assert value(families, "taskboard_tracking_write_lag_seconds", **older) == 0
    workers = {s.labels["worker"] for s in families["taskboard_tracking_pending_writes"].samples}
    assert workers == {"busy@h", "stopped@h", "older@h"}
    assert value(families, "taskboard_workers_online") == 2  # a stopped worker is not online


def test_counters_never_go_back_across_prune_bulk_delete_admin_and_a_restart(worker, tmp_path):
    staff = make_user("admin", staff=True, is_superuser=True)
    run_tasks_on_the_worker()
    old = timezone.now() - timedelta(days=400)
    make_execution(state=TaskState.FAILURE, created_at=old, duration=45.0)
    make_execution(state=TaskState.REVOKED, created_at=old)
    before = counters(scrape())
    # Retention: every finished row goes (the cutoff is in the future).
    pruned = executions_prune(older_than=timezone.now() + timedelta(days=1), batch_size=2)
    assert pruned >= 6 and not TaskExecution.objects.finished().exists()
    assert DeletedExecutionTotal.objects.exists()
    after_prune = counters(scrape())
    assert after_prune == before  # the same numbers, now from the totals
    # New tasks, then a bulk delete of them and an admin delete.
    ids = run_tasks_on_the_worker()
    grown = counters(scrape())
    assert_not_back(after_prune, grown)
    assert grown != after_prune
    result = executions_delete(rows=TaskExecution.objects.filter(task_id__in=ids[:2]), by=staff)
    assert result.done == 2
    admin = client_for(staff)
    target = TaskExecution.objects.get(task_id=ids[2])
    response = admin.post(f"/admin/taskboard/taskexecution/{target.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not TaskExecution.objects.filter(pk=target.pk).exists()
    remaining = TaskExecution.objects.filter(task_id__in=ids)
    response = admin.post(
        "/admin/taskboard/taskexecution/",
        {
            "action": "delete_selected",
            "_selected_action": list(remaining.values_list("pk", flat=True)),
            "post": "yes",
        },
        follow=True,
    )
    messages = [str(message) for message in response.context["messages"]]
    assert response.status_code == 200 and not remaining.exists(), messages
    assert counters(scrape()) == grown
    # A restart: a new process, its own empty cache, the same database.
    restarted = parse(scrape_in_a_new_process(tmp_path / "scrape.txt"))
    assert counters(restarted) == grown


def scrape_in_a_new_process(out: Path) -> str:
    """A scrape in a process of its own (its own cache: none), as after a restart; the
    logs go to stdout, the exposition to `out`."""
    env = {
        "SCRAPE_TO": str(out),
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sgm.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "CACHE_URL": "",
        "CELERY_BROKER_URL": "memory://",
        "SGM_VAR_DIR": str(ROOT / "var" / f"metrics-restart-{uuid.uuid4().hex[:8]}"),
        "TASKBOARD_METRICS_TOKEN": TOKEN,
    }
    code = (
        "import os, django; django.setup()\n"
        "from django.test import Client\n"
        f"r = Client().get('/metrics', headers={AUTH!r})\n"
        "assert r.status_code == 200, r.status_code\n"
        "open(os.environ['SCRAPE_TO'], 'wb').write(r.content)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out.read_text()


def test_a_lost_task_its_worker_finished_later_stays_counted_as_lost(db):
    lost = make_execution(state=TaskState.LOST, lost_at=timezone.now(), task_name="t.lost")
    labels = {"module": "nomina", "task_name": "t.lost"}
    first = scrape()
    assert value(first, "taskboard_tasks_lost_total", **labels) == 1
    assert value(first, "taskboard_tasks_finished_total", **labels, state="LOST") == 1
    assert value(first, "taskboard_task_duration_seconds_count", **labels) == 0
    # The worker's own final word beats the inference (lost_at stays).
    TaskExecution.objects.filter(pk=lost.pk).update(state=TaskState.SUCCESS, duration=20.0)
    second = scrape()
    assert_not_back(counters(first), counters(second))
    assert value(second, "taskboard_tasks_lost_total", **labels) == 1
    assert value(second, "taskboard_tasks_lost_recovered_total", **labels) == 1
    assert value(second, "taskboard_tasks_finished_total", **labels, state="LOST") == 1
    assert value(second, "taskboard_tasks_finished_total", **labels, state="SUCCESS") == 0
    assert value(second, "taskboard_task_duration_seconds_bucket", **labels, le="30.0") == 1


def test_gauges_count_running_queued_and_retrying(db):
    published = timezone.now() - timedelta(minutes=5)
    for state in (TaskState.STARTED, TaskState.PROGRESS, TaskState.RETRY):
        make_execution(state=state, task_name="t.gauge")
    make_execution(state=TaskState.PENDING, task_name="t.gauge", created_at=published)
    make_execution(state=TaskState.RECEIVED, task_name="t.gauge")
    families = scrape()
    labels = {"module": "nomina", "task_name": "t.gauge"}
    assert value(families, "taskboard_tasks_running", **labels) == 2
    assert value(families, "taskboard_tasks_queued", **labels) == 2
    assert value(families, "taskboard_tasks_retrying", **labels) == 1
    oldest = value(families, "taskboard_tasks_oldest_queued_timestamp_seconds", **labels)
    assert oldest == pytest.approx(published.timestamp(), abs=1)
    assert sum(value(families, "taskboard_tasks_finished_total", **labels, state=s) for s in
               ("SUCCESS", "FAILURE", "REVOKED", "LOST")) == 0  # fmt: skip


def test_queue_lengths_come_from_the_worker_panels_snapshot_only(db, staff, worker):
    assert "celery" not in {
        s.labels.get("queue") for s in scrape()["taskboard_queue_length"].samples
    }  # nobody looked at the workers yet: no broadcast for a scrape
    panel = client_for(staff).get("/tasks/fragments/workers/", headers={"HX-Request": "true"})
    assert panel.status_code == 200
    families = scrape()
    assert value(families, "taskboard_queue_length", queue="celery") >= 0
    assert "celery" in {s.labels.get("queue") for s in families["taskboard_queue_length"].samples}


# --- Who may read it ------------------------------------------------------------------------


def test_who_may_read_the_metrics(db, settings):
    anonymous = Client().get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    wrong = Client().get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401 and "invalid_token" in wrong["WWW-Authenticate"]
    assert Client().get("/metrics", headers={"Authorization": "Basic abc"}).status_code == 401
    assert Client().get("/metrics", headers=AUTH).status_code == 200
    assert client_for(make_user(staff=True)).get("/metrics").status_code == 200
    assert client_for(make_user()).get("/metrics").status_code == 403
    assert Client().post("/metrics", headers=AUTH).status_code == 405
    # No token set: no bearer token opens it, only a staff session.
    settings.TASKBOARD_METRICS_TOKEN = ""
    assert Client().get("/metrics", headers=AUTH).status_code == 401
    assert Client().get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
    assert client_for(make_user(staff=True)).get("/metrics").status_code == 200


def test_a_database_that_does_not_answer_is_a_503_never_a_500(db, monkeypatch):
    def unreachable() -> None:
        raise OperationalError("connection refused")  # what a stopped database raises

    monkeypatch.setattr(metrics_view, "metrics_read", unreachable)
    response = Client().get("/metrics", headers=AUTH)
    assert response.status_code == 503 and response["Retry-After"] == "10"
    assert not cache.get(METRICS_KEY)  # nothing half-read is kept


def test_prometheus_reaches_web_over_the_internal_network(db, settings):
    """http://web:8000/metrics: a host and a scheme the public settings refuse."""
    settings.ALLOWED_HOSTS = ["tasks.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    internal = Client(HTTP_HOST="web:8000")
    assert internal.get("/metrics", headers=AUTH).status_code == 200
    assert internal.get("/metrics").status_code != 200  # no token: the usual rules


# --- What a scrape costs ----------------------------------------------------------------------


def test_a_scrape_is_two_queries_then_none_while_cached(db):
    users = [make_user() for _ in range(3)]
    for index in range(300):
        make_execution(
            user=users[index % 3],
            state=[TaskState.SUCCESS, TaskState.FAILURE, TaskState.STARTED][index % 3],
            task_name=f"t.job{index % 7}",
            duration=float(index),
        )
    forget_snapshot()
    with CaptureQueriesContext(connection) as cold:
        assert Client().get("/metrics", headers=AUTH).status_code == 200
    assert len(cold) == 2, [q["sql"] for q in cold]  # the tallies (with the totals), heartbeats
    with CaptureQueriesContext(connection) as warm:
        assert Client().get("/metrics", headers=AUTH).status_code == 200
    assert len(warm) == 0


def test_the_readme_documents_every_name():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Metrics", 1)[1].split("\n## ", 1)[0]
    for name, (kind, labels) in DOCUMENTED.items():
        shown = f"{name}_total" if kind == "counter" else name
        line = next((ln for ln in section.splitlines() if ln.startswith(f"| `{shown}` |")), None)
        assert line is not None, f"{name} is not in the README's Metrics section"
        assert kind in line, (name, kind)
        for label in labels:
            assert f"`{label}`" in line, (name, label)
