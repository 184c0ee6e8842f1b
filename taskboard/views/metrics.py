"""/metrics: taskboard's numbers in Prometheus's text format, for a scraper holding the
bearer token (TASKBOARD_METRICS_TOKEN) or a staff session; never public.

The numbers come from the database (selectors/metrics.py), read once per
TASKBOARD_METRICS_CACHE_SECONDS for every web process (single-flight, in the shared cache),
so any gunicorn worker answers the same and a scrape at a million rows costs a cache read.
A custom Collector on a private registry turns that snapshot into metric families: no
per-process counter, nothing of the default registry (this process's GC and CPU).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from taskboard.conf import conf
from taskboard.models import DURATION_BUCKETS, TaskState
from taskboard.permissions import is_operator
from taskboard.selectors.metrics import MetricsSnapshot, TaskCounts, metrics_read
from taskboard.services.workers import WORKERS_KEY, WorkersSnapshot, single_flight
from taskboard.services.workers.single_flight import peek

logger = logging.getLogger(__name__)

PATH = "/metrics"
METRICS_KEY = "taskboard:metrics:v2"  # v2: the snapshot carries the workers' tracking
# The longest one read may take (it bounds how long a dead reader's lock is held).
READ_BUDGET = 30.0
FINISHED_STATES = (TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED, TaskState.LOST)
TASK_LABELS = ["module", "task_name"]
WORKER_LABELS = ["worker"]


def metrics_snapshot() -> MetricsSnapshot | None:
    """The shared snapshot, read again at most once per interval by one process; None
    while another process takes the first one (the scrape is answered 503, never with
    zeros a counter would take for a reset)."""
    snapshot = single_flight(
        METRICS_KEY,
        metrics_read,
        fresh_for=conf.METRICS_CACHE_SECONDS,
        budget=READ_BUDGET,
        unavailable=lambda: None,
    )
    if snapshot is not None:
        workers = peek(WORKERS_KEY)  # the worker panel's own, if any: never a broadcast
        if isinstance(workers, WorkersSnapshot):
            snapshot.queue_lengths = workers.queue_lengths
    return snapshot


class SnapshotCollector(Collector):
    """The metric families of one snapshot (names, labels and types in the README)."""

    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        yield from self._tasks()
        yield from self._workers()
        yield from self._tracking()

    def _tasks(self) -> Iterator[Metric]:
        tasks = sorted(self.snapshot.tasks.items())
        finished = CounterMetricFamily(
            "taskboard_tasks_finished",
            "Tasks finished, by how they first ended (a task marked LOST stays LOST here).",
            labels=[*TASK_LABELS, "state"],
        )
        lost = CounterMetricFamily(
            "taskboard_tasks_lost",
            "Tasks marked LOST (their worker died or vanished).",
            labels=TASK_LABELS,
        )
        recovered = CounterMetricFamily(
            "taskboard_tasks_lost_recovered",
            "Tasks marked LOST whose worker later reported SUCCESS or FAILURE.",
            labels=TASK_LABELS,
        )
        duration = HistogramMetricFamily(
            "taskboard_task_duration_seconds",
            "Run time of tasks that ended SUCCESS, FAILURE or REVOKED.",
            labels=TASK_LABELS,
        )
        gauges = {
            name: GaugeMetricFamily(name, documentation, labels=TASK_LABELS)
            for name, documentation in (
                ("taskboard_tasks_running", "Tasks running now (STARTED or PROGRESS)."),
                ("taskboard_tasks_queued", "Tasks waiting for a worker (PENDING or RECEIVED)."),
                ("taskboard_tasks_retrying", "Tasks waiting to run again (RETRY)."),
                (
                    "taskboard_tasks_oldest_queued_timestamp_seconds",
                    "When the oldest task still waiting for a worker was published (Unix time).",
                ),
            )
        }
        for (module, task_name), counts in tasks:
            labels = [module, task_name]
            for state in FINISHED_STATES:
                finished.add_metric([*labels, state], counts.finished[state])
            lost.add_metric(labels, counts.lost)
            recovered.add_metric(labels, counts.recovered)
            duration.add_metric(labels, _buckets(counts), sum_value=counts.duration_sum)
            gauges["taskboard_tasks_running"].add_metric(labels, counts.running)
            gauges["taskboard_tasks_queued"].add_metric(labels, counts.queued)
            gauges["taskboard_tasks_retrying"].add_metric(labels, counts.retrying)
            if counts.oldest_queued is not None:
                oldest = gauges["taskboard_tasks_oldest_queued_timestamp_seconds"]
                oldest.add_metric(labels, counts.oldest_queued.timestamp())
        yield from (finished, lost, recovered, duration, *gauges.values())

    def _workers(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        yield GaugeMetricFamily(
            "taskboard_workers_online",
            "Workers whose taskboard heartbeat is recent (and not stopped).",
            value=snapshot.workers_online,
        )
        consumers = GaugeMetricFamily(
            "taskboard_queue_workers_online",
            "Online workers consuming each queue.",
            labels=["queue"],
        )
        for queue, workers in sorted(snapshot.queue_workers.items()):
            consumers.add_metric([queue], workers)
        yield consumers
        lengths = GaugeMetricFamily(
            "taskboard_queue_length",
            "Messages waiting in each queue, as the worker panel last saw them.",
            labels=["queue"],
        )
        for queue, length in sorted((snapshot.queue_lengths or {}).items()):
            lengths.add_metric([queue], length)
        yield lengths

    def _tracking(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        yield from self._worker_tracking()
        yield GaugeMetricFamily(
            "taskboard_tracking_spill_files",
            "Spill files of tracking writes waiting to be replayed (this web host's folder).",
            value=snapshot.spill_files,
        )
        yield GaugeMetricFamily(
            "taskboard_tracking_spill_bytes",
            "Bytes of those spill files.",
            value=snapshot.spill_bytes,
        )
        yield GaugeMetricFamily(
            "taskboard_tracking_spill_unreadable_files",
            "Spill files set aside as unreadable: their writes wait for a person.",
            value=snapshot.spill_unreadable,
        )
        yield GaugeMetricFamily(
            "taskboard_metrics_snapshot_timestamp_seconds",
            "When these numbers were read from the database (Unix time).",
            value=snapshot.taken_at,
        )
        yield GaugeMetricFamily(
            "taskboard_metrics_snapshot_duration_seconds",
            "How long reading them took.",
            value=snapshot.took,
        )

    def _worker_tracking(self) -> Iterator[Metric]:
        """Each worker's tracking writes, as its last heartbeat said (every process of it,
        pool processes included): workers online or stopped within WORKER_OFFLINE_AFTER."""
        lag = GaugeMetricFamily(
            "taskboard_tracking_write_lag_seconds",
            "Age of the oldest tracking write of the worker not yet in the database (0 when "
            "none), at its last heartbeat; a write waits TASKBOARD_WRITE_DELAY to be batched.",
            labels=WORKER_LABELS,
        )
        pending = GaugeMetricFamily(
            "taskboard_tracking_pending_writes",
            "Tracking writes of the worker not yet in the database (in memory, being written "
            "or in its spill files), at its last heartbeat.",
            labels=WORKER_LABELS,
        )
        dropped = CounterMetricFamily(
            "taskboard_tracking_dropped_writes",
            "Tracking writes the worker gave up (the database refused them, or the pool "
            "process holding them died); from the worker's start: resets when it restarts.",
            labels=WORKER_LABELS,
        )
        spilled = CounterMetricFamily(
            "taskboard_tracking_spilled_writes",
            "Tracking writes the worker spilled to disk while the database was away "
            "(replayed when it answers); from the worker's start: resets when it restarts.",
            labels=WORKER_LABELS,
        )
        for worker, figures in sorted(self.snapshot.tracking.items()):
            lag.add_metric([worker], figures.lag)
            pending.add_metric([worker], figures.pending)
            dropped.add_metric([worker], figures.dropped)
            spilled.add_metric([worker], figures.spilled)
        yield from (lag, pending, dropped, spilled)


def _buckets(counts: TaskCounts) -> list[tuple[str, float]]:
    """Cumulative counts per `le`, +Inf last (Prometheus's histogram)."""
    within = [
        (_le(bound), float(n)) for bound, n in zip(DURATION_BUCKETS, counts.buckets, strict=True)
    ]
    return [*within, ("+Inf", float(counts.duration_count))]


def _le(bound: float) -> str:
    """A bound as Prometheus writes it: "1.0", "300.0", "+Inf"."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


def exposition(snapshot: MetricsSnapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry)


# --- Who may read it ------------------------------------------------------------------------


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an "Authorization: Bearer <token>" header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def token_matches(token: str) -> bool:
    """Compared in constant time; no token configured: no token matches."""
    expected = conf.METRICS_TOKEN
    return bool(expected) and hmac.compare_digest(token.encode(), expected.encode())


def _refused(status: int, message: str, challenge: str | None = None) -> HttpResponse:
    response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    if challenge is not None:
        response["WWW-Authenticate"] = challenge
    response["Cache-Control"] = "no-store"
    return response


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    token = bearer_token(request)
    user = getattr(request, "user", None)
    if token is not None and not token_matches(token):
        return _refused(
            401,
            _("The bearer token is not the one set in TASKBOARD_METRICS_TOKEN."),
            'Bearer realm="taskboard", error="invalid_token"',
        )
    if token is None and not is_operator(user):
        if user is not None and user.is_authenticated:
            return _refused(403, _("Only staff may read the metrics."))
        return _refused(
            401,
            _("Reading the metrics needs the bearer token or a staff session."),
            'Bearer realm="taskboard"',
        )
    try:
        snapshot = metrics_snapshot()
    except DatabaseError:
        logger.warning("taskboard: the metrics could not be read", exc_info=True)
        response = _refused(503, _("The database does not answer; the metrics wait for it."))
        response["Retry-After"] = "10"
        return response
    if snapshot is None:
        response = _refused(503, _("The metrics are being read; try again in a moment."))
        response["Retry-After"] = "2"
        return response
    response = HttpResponse(exposition(snapshot), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
