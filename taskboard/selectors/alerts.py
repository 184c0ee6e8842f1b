"""Alert reads: what each kind of rule measures (one or two aggregate queries), and the
state and history the alerts page shows.

Measurements return numbers, never wording: services.alerts decides and says."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Min, QuerySet

from taskboard.conf import conf
from taskboard.models import (
    FAILED_STATES,
    Alert,
    AlertKind,
    AlertRule,
    AlertSilence,
    TaskExecution,
    TaskExecutionQuerySet,
    TaskState,
    WorkerHeartbeat,
    in_states,
)
from taskboard.selectors.estimates import latest_success_durations
from taskboard.selectors.stats import (
    SUCCEEDED_RUN,
    PercentileDisc,
    nearest_rank,
    percentiles_in_sql,
)


@dataclass(frozen=True)
class Measurement:
    """holds: the rule's condition holds now (None: it cannot tell, e.g. the broker does
    not answer, and the alert's state stays as it is). value: what was seen."""

    holds: bool | None
    value: float | None = None


UNKNOWN = Measurement(holds=None)


def _scoped(rule: AlertRule) -> TaskExecutionQuerySet:
    rows: TaskExecutionQuerySet = TaskExecution.objects.order_by()
    if rule.module:
        rows = rows.filter(module=rule.module)
    if rule.task_name:
        rows = rows.filter(task_name=rule.task_name)
    return rows


def _in_window(rule: AlertRule, now: datetime) -> TaskExecutionQuerySet:
    """Tasks created in the rule's window (created_at: what the module and created
    indexes serve; a task finishing in the window was created in it or shortly before)."""
    return _scoped(rule).filter(created_at__gte=now - rule.window_delta, created_at__lte=now)


def failure_rate(rule: AlertRule, now: datetime) -> Measurement:
    """Percent of the window's finished tasks that failed or were lost, when at least
    min_count finished; one aggregate."""
    counts = (
        _in_window(rule, now)
        .finished()
        .aggregate(total=Count("pk"), failed=Count("pk", filter=in_states(FAILED_STATES)))
    )
    total, failed = counts["total"], counts["failed"]
    if total < rule.min_count:
        return Measurement(holds=False, value=None)
    percent = 100.0 * failed / total
    return Measurement(holds=percent > (rule.threshold or 0), value=percent)


def duration_p95(rule: AlertRule, now: datetime) -> Measurement:
    """The p95 duration (s) of the window's successful runs, when at least min_count;
    percentile_disc on PostgreSQL, nearest rank in Python on SQLite. One query."""
    runs = _in_window(rule, now).filter(SUCCEEDED_RUN)
    if percentiles_in_sql():
        row = runs.aggregate(count=Count("pk"), p95=PercentileDisc("duration", fraction=0.95))
        count, p95 = row["count"], row["p95"]
    else:
        durations = [float(d) for d in runs.values_list("duration", flat=True) if d is not None]
        count, p95 = len(durations), nearest_rank(durations, 0.95)
    if count < rule.min_count or p95 is None:
        return Measurement(holds=False, value=p95)
    return Measurement(holds=p95 > (rule.threshold or 0), value=float(p95))


def long_running(rule: AlertRule, now: datetime) -> Measurement:
    """The largest elapsed ÷ usual p95 among running tasks (usual: the p95 of its name's
    latest successful runs, at least min_count of them). Two queries: the running tasks
    (the partial index of active rows) and, at most once per USUAL_P95_SECONDS, the
    latest durations of their names."""
    running = list(
        _scoped(rule)
        .running()
        .filter(started_at__isnull=False)
        .values_list("task_name", "started_at")
    )
    if not running:
        return Measurement(holds=False, value=None)
    usual = {
        name: p95
        for name, (p95, runs) in usual_p95s(task_names={name for name, _ in running}).items()
        if runs >= rule.min_count
    }
    ratios = [
        (now - started).total_seconds() / p95
        for name, started in running
        if started is not None and (p95 := usual.get(name))
    ]
    if not ratios:
        return Measurement(holds=False, value=None)
    worst = max(ratios)
    return Measurement(holds=worst > (rule.factor or 0), value=worst)


def backlog_age(rule: AlertRule, now: datetime) -> Measurement:
    """Seconds the oldest queued task has waited, when at least min_count queued tasks are
    older than the threshold; one aggregate over the partial index of active rows."""
    limit = now - timedelta(seconds=rule.threshold or 0)
    row = (
        _scoped(rule)
        .queued()
        .filter(created_at__lt=limit)
        .aggregate(count=Count("pk"), oldest=Min("created_at"))
    )
    if row["count"] < rule.min_count or row["oldest"] is None:
        return Measurement(holds=False, value=None)
    return Measurement(holds=True, value=(now - row["oldest"]).total_seconds())


def no_worker(rule: AlertRule, now: datetime) -> Measurement:
    """Seconds since a worker consuming the rule's queue was last online (from the
    heartbeats: one small query), held when it reaches the threshold. A queue nobody has
    consumed since the rule exists counts from the rule's creation."""
    online_since = WorkerHeartbeat.online_since(now)
    last_heard = rule.created_at
    for queues, last_seen, stopped_at in WorkerHeartbeat.objects.order_by().values_list(
        "queues", "last_seen", "stopped_at"
    ):
        if not isinstance(queues, list) or rule.queue not in queues:
            continue
        if stopped_at is None and last_seen >= online_since:
            return Measurement(holds=False, value=0.0)
        gone = stopped_at or last_seen + timedelta(seconds=conf.WORKER_OFFLINE_AFTER)
        last_heard = max(last_heard, gone)
    away = max((now - last_heard).total_seconds(), 0.0)
    return Measurement(holds=away >= (rule.threshold or 0), value=away)


def lost_since_last(rule: AlertRule, now: datetime) -> Measurement:
    """How many tasks were marked LOST since the rule's previous evaluation (its creation
    at first); one count over the partial index tb_exec_lost."""
    since = rule.last_evaluated_at or rule.created_at
    count = (
        _scoped(rule)
        .filter(lost_at__isnull=False, lost_at__gt=since, lost_at__lte=now, state=TaskState.LOST)
        .count()
    )
    return Measurement(holds=count > 0, value=float(count))


USUAL_P95_SECONDS = 300  # a task's usual duration changes slowly: remembered this long
USUAL_P95_KEY = "taskboard:alerts:usual-p95:v1:"


def usual_p95s(*, task_names: set[str]) -> dict[str, tuple[float, int]]:
    """(p95, runs it is of) of each task name's latest successful runs, remembered in the
    shared cache for USUAL_P95_SECONDS: a long-running rule evaluated every 30 s walks the
    durations of a name once per five minutes, not every time. Names never run
    successfully are absent."""
    keys = {name: USUAL_P95_KEY + hashlib.sha1(name.encode()).hexdigest() for name in task_names}
    try:
        remembered = cache.get_many(list(keys.values()))
    except Exception:  # the cache is down: compute, do not fail the rule
        remembered = {}
    found: dict[str, tuple[float, int]] = {}
    for name, key in keys.items():
        value = remembered.get(key)
        if isinstance(value, list | tuple) and len(value) == 2 and value[1]:
            found[name] = (float(value[0]), int(value[1]))
    missing = {name for name in task_names if keys[name] not in remembered}
    if not missing:
        return found
    durations = latest_success_durations(task_names=missing)
    fresh: dict[str, Any] = {}
    for name in missing:
        values = durations.get(name, [])
        p95 = nearest_rank(values, 0.95)
        fresh[keys[name]] = (p95 or 0.0, len(values))  # (0, 0): none yet, remembered too
        if p95 is not None:
            found[name] = (p95, len(values))
    with contextlib.suppress(Exception):
        cache.set_many(fresh, timeout=USUAL_P95_SECONDS)
    return found


# The kinds measured from the database alone (queue length asks the broker: services).
MEASURES: dict[str, Callable[[AlertRule, datetime], Measurement]] = {
    AlertKind.FAILURE_RATE: failure_rate,
    AlertKind.DURATION_P95: duration_p95,
    AlertKind.LONG_RUNNING: long_running,
    AlertKind.BACKLOG_AGE: backlog_age,
    AlertKind.NO_WORKER: no_worker,
    AlertKind.LOST: lost_since_last,
}


# --- The alerts page ---------------------------------------------------------------------


@dataclass(frozen=True)
class RuleState:
    rule: AlertRule
    firing: Alert | None
    silenced_until: datetime | None


def silences_active(*, now: datetime) -> list[AlertSilence]:
    rows = AlertSilence.objects.filter(starts_at__lte=now, ends_at__gt=now)
    return list(rows.select_related("rule").order_by("ends_at"))


def silenced_until(*, silences: list[AlertSilence], rule_id: int, now: datetime) -> datetime | None:
    """When the latest silence covering this rule now ends (None: not silenced)."""
    ends = [s.ends_at for s in silences if s.covers(rule_id=rule_id, at=now)]
    return max(ends) if ends else None


def alert_rule_states(*, now: datetime, silences: list[AlertSilence]) -> list[RuleState]:
    """Every rule with its firing alert and whether `silences` (those active now) cover
    it: two queries."""
    rules = list(AlertRule.objects.all())
    firing = {a.rule_id: a for a in Alert.objects.filter(resolved_at__isnull=True)}
    return [
        RuleState(
            rule, firing.get(rule.pk), silenced_until(silences=silences, rule_id=rule.pk, now=now)
        )
        for rule in rules
    ]


def alert_history(*, limit: int = 100) -> QuerySet[Alert]:
    """The latest alerts, firing or resolved, newest first."""
    return Alert.objects.select_related("rule").order_by("-fired_at", "-id")[:limit]


def alerts_firing_count() -> int:
    return Alert.objects.filter(resolved_at__isnull=True).count()
