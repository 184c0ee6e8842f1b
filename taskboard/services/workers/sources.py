"""Worker sources: who is working, on what. Flower, taskboard's own heartbeats, or inspect().

Every source returns the same WorkerRecord list. `workers_snapshot()` tries the configured
sources in order, caches the answer for the poll interval in the shared cache and fetches it
single-flight across processes, so a hundred open dashboards cost one fetch per interval.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from celery import current_app
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from taskboard.conf import conf
from taskboard.models import TaskExecution, WorkerHeartbeat
from taskboard.permissions import Viewer, is_operator
from taskboard.services.workers.broker import (
    BROKER_CALL_TIMEOUT,
    broker_connection,
    broker_errors,
    broker_recently_down,
    mark_broker_down,
)
from taskboard.services.workers.flower import FlowerError, FlowerService
from taskboard.services.workers.single_flight import single_flight

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Offline workers stay on the panel (greyed) this long after their last heartbeat.
OFFLINE_SHOWN_FOR = timedelta(hours=24)

# The longest one snapshot fetch may spend on Flower and the broker together: the sources
# tried after a slow one get what is left, and skip what would not fit.
SNAPSHOT_BUDGET = 3.0
_deadline: ContextVar[float | None] = ContextVar("taskboard_snapshot_deadline", default=None)


def time_left() -> float:
    """Seconds left of the current snapshot fetch (infinite outside one)."""
    deadline = _deadline.get()
    return math.inf if deadline is None else deadline - time.monotonic()


@contextmanager
def within(seconds: float) -> Iterator[None]:
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


@dataclass(frozen=True)
class ActiveTask:
    task_id: str
    name: str


@dataclass(frozen=True)
class WorkerRecord:
    name: str
    online: bool
    last_seen: datetime | None = None
    active: tuple[ActiveTask, ...] = ()
    processed: int | None = None
    concurrency: int | None = None
    queues: tuple[str, ...] = ()
    loadavg: tuple[float, ...] | None = None
    others_active: int = 0  # active tasks of other users, not listed for this viewer


class SourceUnavailable(Exception):
    """A source could not tell: `reason` is a code, `detail` what happened."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SourceFailure:
    source: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class WorkersSnapshot:
    source: str  # the source shown, or "none" when every source failed
    workers: tuple[WorkerRecord, ...]
    queue_lengths: dict[str, int] | None
    fetched_at: datetime
    fallbacks: tuple[SourceFailure, ...] = ()

    @property
    def online(self) -> list[WorkerRecord]:
        return [worker for worker in self.workers if worker.online]


class WorkerSource(Protocol):
    name: str

    def fetch(self) -> tuple[list[WorkerRecord], dict[str, int] | None]:
        """Workers and queue lengths (None: unknown). Raises SourceUnavailable."""
        ...


# --- Heartbeats ---------------------------------------------------------------------------


class HeartbeatSource:
    """The rows workers write about themselves (taskboard.tracking.heartbeats)."""

    name = "heartbeats"

    def fetch(self) -> tuple[list[WorkerRecord], dict[str, int] | None]:
        now = timezone.now()
        rows = list(WorkerHeartbeat.objects.filter(last_seen__gte=now - OFFLINE_SHOWN_FOR))
        if not rows:
            raise SourceUnavailable("no_heartbeats")
        workers = [_from_heartbeat(row, online=row.is_online(now=now)) for row in rows]
        queues = sorted({queue for worker in workers if worker.online for queue in worker.queues})
        return _ordered(workers), broker_queue_lengths(queues)


def _from_heartbeat(row: WorkerHeartbeat, *, online: bool) -> WorkerRecord:
    return WorkerRecord(
        name=row.hostname,
        online=online,
        last_seen=row.last_seen,
        active=tuple(
            ActiveTask(str(task.get("id", "")), str(task.get("name", "")))
            for task in (row.active or [])
            if isinstance(task, dict)
        )
        if online
        else (),
        processed=row.processed,
        concurrency=row.concurrency,
        queues=tuple(row.queues or ()),
        loadavg=tuple(row.loadavg) if row.loadavg else None,
    )


def heartbeat_names() -> list[str]:
    """Workers that recently said they are up: inspect() can name them and not wait."""
    since = WorkerHeartbeat.online_since(timezone.now())
    return list(
        WorkerHeartbeat.objects.filter(last_seen__gte=since, stopped_at__isnull=True)
        .order_by("hostname")
        .values_list("hostname", flat=True)
    )


# --- Celery inspect() ---------------------------------------------------------------------


class InspectSource:
    """A broadcast to the workers. Without `destination` every call waits its whole timeout
    even when all workers answered at once, so the workers known from heartbeats are named
    (the call then returns as soon as they answer); unnamed only when none is known."""

    name = "inspect"

    def __init__(self, app: Any = None) -> None:
        self.app = app or current_app

    def fetch(self) -> tuple[list[WorkerRecord], dict[str, int] | None]:
        timeout = conf.INSPECT_TIMEOUT
        known = heartbeat_names()
        if broker_recently_down():
            raise SourceUnavailable("broker", "unreachable a moment ago")
        if time_left() < timeout + BROKER_CALL_TIMEOUT:
            raise SourceUnavailable("broker", "no time left")
        try:
            with broker_connection(self.app) as connection:
                stats = self._inspect(known or None, timeout, connection).stats() or {}
                if not stats:
                    raise SourceUnavailable("no_workers", f"{timeout:g}")
                answered = sorted(stats)
                inspect = self._inspect(answered, timeout, connection)
                active = inspect.active() or {}
                active_queues = inspect.active_queues() or {}
        except SourceUnavailable:
            raise
        except Exception as exc:  # the broker is down or refuses us
            if isinstance(exc, broker_errors()):
                mark_broker_down()
            raise SourceUnavailable("broker", str(exc)[:200]) from exc
        now = timezone.now()
        workers = [
            _from_inspect(name, stats[name], active.get(name), active_queues.get(name), now)
            for name in answered
        ]
        # Workers that heartbeat but did not answer are shown offline, not dropped.
        workers += [WorkerRecord(name=name, online=False) for name in known if name not in stats]
        queues = sorted({queue for worker in workers for queue in worker.queues})
        return _ordered(workers), broker_queue_lengths(queues, app=self.app)

    def _inspect(self, destination: list[str] | None, timeout: float, connection: Any) -> Any:
        return self.app.control.inspect(
            destination=destination, timeout=timeout, connection=connection
        )


def _from_inspect(
    name: str, stats: Any, active: Any, active_queues: Any, now: datetime
) -> WorkerRecord:
    stats = stats if isinstance(stats, dict) else {}
    pool = stats.get("pool") if isinstance(stats.get("pool"), dict) else {}
    totals = stats.get("total") if isinstance(stats.get("total"), dict) else {}
    return WorkerRecord(
        name=name,
        online=True,
        last_seen=now,
        active=_active_tasks(active),
        processed=sum(int(count) for count in totals.values()),
        concurrency=_int_or_none(pool.get("max-concurrency")),
        queues=_queue_names(active_queues),
        loadavg=None,
    )


def _active_tasks(active: Any) -> tuple[ActiveTask, ...]:
    if not isinstance(active, list):
        return ()
    return tuple(
        ActiveTask(str(task.get("id", "")), str(task.get("name", "")))
        for task in active
        if isinstance(task, dict) and task.get("id")
    )


def _queue_names(active_queues: Any) -> tuple[str, ...]:
    if not isinstance(active_queues, list):
        return ()
    return tuple(
        sorted(str(q["name"]) for q in active_queues if isinstance(q, dict) and q.get("name"))
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- Flower -------------------------------------------------------------------------------


class FlowerSource:
    """Flower's API: workers (its inspect), their active tasks, queue lengths."""

    name = "flower"

    def __init__(self) -> None:
        self.service = FlowerService.from_settings()

    def fetch(self) -> tuple[list[WorkerRecord], dict[str, int] | None]:
        if self.service is None:
            raise SourceUnavailable("not_configured")
        try:
            return self._fetch(self.service)
        except FlowerError as exc:
            raise SourceUnavailable(exc.code, str(exc)) from exc

    def _fetch(self, service: FlowerService) -> tuple[list[WorkerRecord], dict[str, int] | None]:
        # All of Flower's answers together within one deadline, however slow it is.
        with service.deadline(min(conf.FLOWER_DEADLINE, time_left())):
            return self._fetch_within(service)

    def _fetch_within(
        self, service: FlowerService
    ) -> tuple[list[WorkerRecord], dict[str, int] | None]:
        answered = service.workers(refresh=True)
        workers: list[WorkerRecord] = []
        for name in sorted(answered):
            info = answered[name] if isinstance(answered[name], dict) else {}
            # Flower sends a worker's task lists only when asked for that worker.
            with suppress(FlowerError):  # out of time: the worker without its task lists
                info = {**info, **service.workers(refresh=True, name=name).get(name, {})}
            workers.append(_from_flower(name, info))
        try:
            status = service.worker_status()
        except FlowerError:
            status = {}
        workers += [
            WorkerRecord(name=name, online=False)
            for name, alive in status.items()
            if name not in answered and not alive
        ]
        if not workers:
            raise SourceUnavailable("no_workers", f"{conf.INSPECT_TIMEOUT:g}")
        try:
            lengths: dict[str, int] | None = service.queue_lengths()
        except FlowerError:
            lengths = None
        return _ordered(workers), lengths


def _from_flower(name: str, info: dict[str, Any]) -> WorkerRecord:
    stats = info.get("stats") if isinstance(info.get("stats"), dict) else {}
    record = _from_inspect(
        name, stats, info.get("active"), info.get("active_queues"), timezone.now()
    )
    timestamp = info.get("timestamp")
    if isinstance(timestamp, int | float):
        record = replace(record, last_seen=_from_epoch(timestamp))
    return record


# --- Queue lengths from the broker ----------------------------------------------------------


def broker_queue_lengths(queues: list[str], *, app: Any = None) -> dict[str, int] | None:
    """Messages waiting in each queue, asked of the broker (None when it cannot tell)."""
    if not queues:
        return {}
    if broker_recently_down() or time_left() < BROKER_CALL_TIMEOUT:
        return None  # unknown, rather than one more wait on a sick broker
    lengths: dict[str, int] = {}
    try:
        with broker_connection(app) as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_CALL_TIMEOUT)
            for queue in queues:
                channel: Any
                with conn.channel() as channel:
                    try:
                        _, count, _ = channel.queue_declare(queue=queue, passive=True)
                    except broker_errors():
                        raise  # down or frozen: not an empty queue
                    except Exception:  # Redis drops an empty queue's key: nothing waits
                        count = 0
                    lengths[queue] = int(count)
    except Exception as exc:
        if isinstance(exc, broker_errors()):
            mark_broker_down()
        logger.info("taskboard: queue lengths unavailable", exc_info=True)
        return None
    return lengths


# --- The snapshot, cached and single-flight --------------------------------------------------

BUILTIN_SOURCES: dict[str, Callable[[], WorkerSource]] = {
    "flower": FlowerSource,
    "heartbeats": HeartbeatSource,
    "inspect": InspectSource,
}


def configured_sources() -> list[WorkerSource]:
    sources: list[WorkerSource] = []
    for name in conf.WORKER_SOURCES:
        if name == "flower" and not conf.FLOWER_URL:
            continue  # not deployed: not a failure worth reporting
        factory = BUILTIN_SOURCES.get(name) or import_string(name)
        sources.append(factory())
    return sources


def fetch_snapshot(sources: list[WorkerSource] | None = None) -> WorkersSnapshot:
    """Ask each source in turn; the first that answers is shown, with why the others
    before it were passed over."""
    with within(SNAPSHOT_BUDGET):
        return _fetch_snapshot(configured_sources() if sources is None else sources)


def _fetch_snapshot(sources: list[WorkerSource]) -> WorkersSnapshot:
    failures: list[SourceFailure] = []
    for source in sources:
        try:
            workers, lengths = source.fetch()
        except SourceUnavailable as exc:
            failures.append(SourceFailure(source.name, exc.reason, exc.detail))
            continue
        except Exception as exc:
            logger.exception("taskboard: worker source %s failed", source.name)
            failures.append(SourceFailure(source.name, "error", str(exc)[:200]))
            continue
        now = timezone.now()
        return WorkersSnapshot(source.name, tuple(workers), lengths, now, tuple(failures))
    return WorkersSnapshot("none", (), None, timezone.now(), tuple(failures))


def fetch_budget() -> float:
    """The longest one fetch through every source may take."""
    flower = conf.FLOWER_DEADLINE if conf.FLOWER_URL else 0.0
    return flower + 3 * conf.INSPECT_TIMEOUT + 2.0


WORKERS_KEY = "taskboard:workers:v1"
FLOWER_INFO_KEY = "taskboard:flower-info:v1"


NOT_READY = "not_ready"  # another viewer is fetching and nothing is cached yet


def workers_snapshot() -> WorkersSnapshot:
    """The cached snapshot; at most one fetch per interval across every web process. A
    viewer never waits more than a moment for another's fetch: then the previous snapshot,
    or one that says the workers are being looked up."""
    return single_flight(
        WORKERS_KEY,
        fetch_snapshot,
        fresh_for=conf.WORKERS_CACHE_SECONDS,
        budget=fetch_budget(),
        unavailable=_snapshot_not_ready,
    )


def _snapshot_not_ready() -> WorkersSnapshot:
    detail = _("The workers are being looked up; they appear at the next refresh.")
    failure = SourceFailure("none", NOT_READY, detail)
    return WorkersSnapshot("none", (), None, timezone.now(), (failure,))


def snapshot_for(snapshot: WorkersSnapshot, *, viewer: Viewer) -> WorkersSnapshot:
    """Staff see every active task; anyone else sees their own, and how many others run."""
    if is_operator(viewer):
        return snapshot
    ids = [task.task_id for worker in snapshot.workers for task in worker.active]
    own = (
        set(
            TaskExecution.objects.filter(task_id__in=ids, user_id=viewer.pk or 0).values_list(
                "task_id", flat=True
            )
        )
        if ids
        else set()
    )
    workers = []
    for worker in snapshot.workers:
        mine = tuple(task for task in worker.active if task.task_id in own)
        workers.append(replace(worker, active=mine, others_active=len(worker.active) - len(mine)))
    return replace(snapshot, workers=tuple(workers))


# --- Flower's own state, for the API ---------------------------------------------------------


@dataclass(frozen=True)
class FlowerInfo:
    configured: bool
    reachable: bool
    url: str
    server: str = ""
    error: str = ""
    detail: str = ""
    workers: int = 0
    queues: dict[str, int] | None = None
    source: str = ""


def fetch_flower_info() -> FlowerInfo:
    service = FlowerService.from_settings()
    if service is None:
        return FlowerInfo(configured=False, reachable=False, url="")
    with service.deadline(conf.FLOWER_DEADLINE):
        return _flower_info_within(service)


def _flower_info_within(service: FlowerService) -> FlowerInfo:
    try:
        status = service.worker_status()
        try:
            queues: dict[str, int] | None = service.queue_lengths()
        except FlowerError:
            queues = None
    except FlowerError as exc:
        return FlowerInfo(True, False, service.url, service.server, exc.code, str(exc))
    online = sum(1 for alive in status.values() if alive)
    return FlowerInfo(True, True, service.url, service.server, workers=online, queues=queues)


def flower_info() -> FlowerInfo:
    """Flower's state and the panel's source. The panel's snapshot comes first: when it
    found Flower sick, that is Flower's state too (a sick Flower is not asked twice)."""
    snapshot = workers_snapshot()
    failed = next((f for f in snapshot.fallbacks if f.source in ("flower", "none")), None)
    if failed is not None and (failed.source == "flower" or failed.reason == NOT_READY):
        service = FlowerService.from_settings()
        info = FlowerInfo(
            service is not None,
            False,
            service.url if service else "",
            error=failed.reason,
            detail=failed.detail,
        )
    else:
        info = single_flight(
            FLOWER_INFO_KEY,
            fetch_flower_info,
            fresh_for=conf.WORKERS_CACHE_SECONDS,
            budget=fetch_budget(),
            unavailable=_flower_info_not_ready,
        )
    return replace(info, source=snapshot.source)


def _flower_info_not_ready() -> FlowerInfo:
    service = FlowerService.from_settings()
    detail = _("Flower is being asked; its answer appears at the next refresh.")
    return FlowerInfo(
        service is not None, False, service.url if service else "", error=NOT_READY, detail=detail
    )


def _from_epoch(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def _ordered(workers: list[WorkerRecord]) -> list[WorkerRecord]:
    """Online first, then by name."""
    return sorted(workers, key=lambda worker: (not worker.online, worker.name))
