"""The durable records: one TaskExecution per Celery task id, plus templates and notifications."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from taskboard.conf import conf
from taskboard.permissions import is_operator

if TYPE_CHECKING:
    from taskboard.permissions import Viewer


class TaskState(models.TextChoices):
    PENDING = "PENDING", _("Pending")
    RECEIVED = "RECEIVED", _("Received")
    STARTED = "STARTED", _("Started")
    PROGRESS = "PROGRESS", _("In progress")
    RETRY = "RETRY", _("Retrying")
    SUCCESS = "SUCCESS", _("Succeeded")
    FAILURE = "FAILURE", _("Failed")
    REVOKED = "REVOKED", _("Revoked")
    LOST = "LOST", _("Lost")


TERMINAL_STATES: frozenset[str] = frozenset(
    {TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED, TaskState.LOST}
)
ACTIVE_STATES: frozenset[str] = frozenset(TaskState.values) - TERMINAL_STATES
RUNNING_STATES: frozenset[str] = frozenset({TaskState.STARTED, TaskState.PROGRESS})
# Waiting for a worker: published, or held by one (prefetched, or an ETA not yet due).
QUEUED_STATES: frozenset[str] = frozenset({TaskState.PENDING, TaskState.RECEIVED})
# Ended on its own without success (a revoked task was stopped by a person).
FAILED_STATES: frozenset[str] = frozenset({TaskState.FAILURE, TaskState.LOST})
# What may be launched again with the same call.
RETRYABLE_STATES: frozenset[str] = frozenset({TaskState.FAILURE, TaskState.REVOKED, TaskState.LOST})

# The duration histogram's upper bounds in seconds (Prometheus's `le`), fit for jobs of a
# second to hours. A tally names a bucket by its index here (NO_DURATION: none recorded;
# len(DURATION_BUCKETS): longer than the last bound), so deleted executions' tallies keep
# their meaning: append bounds, never reorder or remove one.
DURATION_BUCKETS: tuple[float, ...] = (
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0,
)  # fmt: skip
NO_DURATION = -1

# The state-transition rule: a write to state S applies only while the row is in one of
# ALLOWED_FROM[S]. It is enforced inside the UPDATE's WHERE clause, so concurrent or
# out-of-order writers never need to read first, and terminal states are final.
ALLOWED_FROM: dict[str, frozenset[str]] = {
    TaskState.PENDING: frozenset(),
    TaskState.RECEIVED: frozenset({TaskState.PENDING, TaskState.RETRY}),
    TaskState.STARTED: frozenset({TaskState.PENDING, TaskState.RECEIVED, TaskState.RETRY}),
    TaskState.PROGRESS: frozenset(
        {
            TaskState.PENDING,
            TaskState.RECEIVED,
            TaskState.STARTED,
            TaskState.PROGRESS,
            TaskState.RETRY,
        }
    ),
    TaskState.RETRY: ACTIVE_STATES,
    # LOST is an inference (its worker looked gone); the worker's own final state is a
    # fact and replaces it, but only when written by the worker that ran the task (see
    # SAME_WORKER_ONLY).
    TaskState.SUCCESS: ACTIVE_STATES | {TaskState.LOST},
    TaskState.FAILURE: ACTIVE_STATES | {TaskState.LOST},
    TaskState.REVOKED: ACTIVE_STATES,
    TaskState.LOST: ACTIVE_STATES,
}
# Transitions ALLOWED_FROM permits only to a write conditioned on the row's worker being
# the writer (`worker = <its hostname>` in the UPDATE): a late final state of the worker
# that ran the task, never another worker's or a person's.
SAME_WORKER_ONLY: dict[str, frozenset[str]] = {
    TaskState.SUCCESS: frozenset({TaskState.LOST}),
    TaskState.FAILURE: frozenset({TaskState.LOST}),
}


def allowed_from(target: str, *, same_worker: bool = False) -> frozenset[str]:
    """The states a write to target may leave; same_worker: the write is conditioned on
    the row's worker being the one that writes."""
    allowed = ALLOWED_FROM[target]
    return allowed if same_worker else allowed - SAME_WORKER_ONLY.get(target, frozenset())


def can_transition(current: str, target: str, *, same_worker: bool = False) -> bool:
    return current in allowed_from(target, same_worker=same_worker)


def is_finished_after_all(execution: TaskExecution) -> bool:
    """Marked LOST, then finished by the worker that ran it (the fact replaced the
    inference; lost_at keeps when it was inferred)."""
    return execution.lost_at is not None and execution.state in SAME_WORKER_ONLY


def in_states(states: frozenset[str] | set[str] | list[str]) -> Q:
    # Sorted: the same SQL text for the same set (statement caches, partial indexes).
    return Q(state__in=sorted(states))


def retryable_q() -> Q:
    """Failed, revoked or lost, with its call kept, and not retried already (served by the
    partial index tb_exec_retry_of). An expression of the row it tests (OuterRef), so it may
    also be an annotation."""
    retried = TaskExecution.objects.filter(retry_of=models.OuterRef("pk"))
    return in_states(RETRYABLE_STATES) & Q(call__isnull=False) & ~Q(models.Exists(retried))


def duration_bucket(duration: float | None) -> int:
    """The index in DURATION_BUCKETS of the first bound duration is within (Prometheus's
    `le`: at most), len(DURATION_BUCKETS) past the last, NO_DURATION for none."""
    if duration is None:
        return NO_DURATION
    for index, bound in enumerate(DURATION_BUCKETS):
        if duration <= bound:
            return index
    return len(DURATION_BUCKETS)


def lost_expression() -> models.ExpressionWrapper[Q]:
    return models.ExpressionWrapper(Q(lost_at__isnull=False), output_field=models.BooleanField())


class TaskExecutionQuerySet(models.QuerySet["TaskExecution"]):
    """The domain's reads, written once: who may see what, and which rows are in which state."""

    def visible_to(self, viewer: Viewer | None) -> TaskExecutionQuerySet:
        """Staff see every execution; anyone else their own; nobody logged in none."""
        if viewer is None or not viewer.is_authenticated:
            return self.none()
        return self if is_operator(viewer) else self.filter(user_id=viewer.pk)

    def in_states(self, states: frozenset[str] | set[str] | list[str]) -> TaskExecutionQuerySet:
        return self.filter(in_states(states))

    def active(self) -> TaskExecutionQuerySet:
        """Queued or running (served by the partial index tb_exec_active)."""
        return self.in_states(ACTIVE_STATES)

    def running(self) -> TaskExecutionQuerySet:
        return self.in_states(RUNNING_STATES)

    def queued(self) -> TaskExecutionQuerySet:
        return self.in_states(QUEUED_STATES)

    def finished(self) -> TaskExecutionQuerySet:
        return self.in_states(TERMINAL_STATES)

    def failed(self) -> TaskExecutionQuerySet:
        return self.in_states(FAILED_STATES)

    def retryable(self) -> TaskExecutionQuerySet:
        return self.filter(retryable_q())

    def cancelled_unfinished_ids(self, *, limit: int) -> list[str]:
        """Task ids whose cancel was asked for but which have not finished: a worker starting
        now must refuse them (it missed the revoke broadcast). Few rows, served by
        tb_exec_active."""
        rows = self.active().filter(cancel_requested_at__isnull=False).order_by("-created_at")
        return list(rows.values_list("task_id", flat=True)[:limit])

    def tallies(self) -> models.QuerySet[Any, Any]:
        """How many of these executions there are per (module, task_name, state, lost), with
        how many have a duration, their sum, how many are within each bound of
        DURATION_BUCKETS (`le_0`, `le_1`, …: cumulative, as Prometheus's buckets), and the
        oldest one's created_at: the metrics' one aggregate. `lost`: marked LOST once
        (lost_at set, whatever came after). Counts with a filter, not a group per bucket:
        a quarter of the time at a million rows."""
        return (
            self.order_by()
            .annotate(lost=lost_expression())
            .values("module", "task_name", "state", "lost")
            .annotate(
                executions=models.Count("pk"),
                duration_count=models.Count("duration"),
                duration_sum=models.Sum("duration"),
                **{
                    f"le_{index}": models.Count("pk", filter=Q(duration__lte=bound))
                    for index, bound in enumerate(DURATION_BUCKETS)
                },
                oldest=models.Min("created_at"),
            )
        )

    def batches(
        self,
        *,
        size: int,
        fields: tuple[str, ...] = (),
        limit: int | None = None,
        newest_first: bool = True,
    ) -> Iterator[list[tuple[Any, ...]]]:
        """(pk, *fields) of these rows in batches of `size`, highest pk first (or lowest, for
        a walk through the oldest rows), at most `limit`.

        A keyset walk: each batch is read past the last one, so the walk reads every row once
        and sees what the batches before it changed or deleted. Bulk actions,
        reconciliation and retention all walk this way."""
        rows = self.select_related(None).order_by("-pk" if newest_first else "pk")
        seen = 0
        cursor: int | None = None
        while limit is None or seen < limit:
            if cursor is None:
                page = rows
            else:
                page = rows.filter(pk__lt=cursor) if newest_first else rows.filter(pk__gt=cursor)
            wanted = size if limit is None else min(size, limit - seen)
            batch = list(page.values_list("pk", *fields)[:wanted])
            if not batch:
                return
            seen += len(batch)
            cursor = batch[-1][0]
            yield batch
            if len(batch) < wanted:
                return


class TaskTemplate(models.Model):
    """A kind of task SGM knows how to launch (registered by @track_task)."""

    key = models.CharField(_("key"), max_length=200, unique=True)
    module = models.CharField(_("module"), max_length=64, db_index=True)
    display_name = models.CharField(_("display name"), max_length=255)
    task_name = models.CharField(_("Celery task name"), max_length=255, blank=True)
    description = models.TextField(_("description"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    # The task's parameters as @track_task found them (name, kind, required, default), so
    # a launch form can check kwargs before anything is enqueued.
    parameters = models.JSONField(_("parameters"), default=list, blank=True)
    default_kwargs = models.JSONField(_("default keyword arguments"), default=dict, blank=True)
    allowed_groups = models.ManyToManyField(
        "auth.Group",
        verbose_name=_("groups that may launch it"),
        blank=True,
        related_name="+",
        help_text=_("Staff may always launch an active template."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["module", "display_name"]
        verbose_name = _("task template")
        verbose_name_plural = _("task templates")

    def __str__(self) -> str:
        return f"{self.display_name} ({self.key})"


class TaskExecution(models.Model):
    """One row per Celery task id, written by idempotent upserts from any process."""

    task_id = models.CharField(_("task id"), max_length=255, unique=True)
    task_name = models.CharField(_("task name"), max_length=255)
    display_name = models.CharField(_("display name"), max_length=255, blank=True)
    module = models.CharField(_("module"), max_length=64, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("launched by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="task_executions",
        db_index=False,  # served by tb_exec_user_created
    )
    template = models.ForeignKey(
        TaskTemplate,
        verbose_name=_("template"),
        to_field="key",
        null=True,
        blank=True,
        # A soft link by key: history outlives a deleted or re-keyed template, and a
        # tracking write never fails on it.
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="executions",
    )
    state = models.CharField(
        _("state"), max_length=16, choices=TaskState.choices, default=TaskState.PENDING
    )
    progress = models.PositiveSmallIntegerField(_("progress"), default=0)
    progress_message = models.CharField(_("progress message"), max_length=255, blank=True)
    args_summary = models.TextField(_("arguments"), blank=True)
    kwargs_summary = models.TextField(_("keyword arguments"), blank=True)
    result_summary = models.TextField(_("result"), blank=True)
    exception_type = models.CharField(_("exception type"), max_length=255, blank=True)
    exception_message = models.TextField(_("exception message"), blank=True)
    traceback = models.TextField(_("traceback"), blank=True)
    worker = models.CharField(_("worker"), max_length=255, blank=True)
    queue = models.CharField(_("queue"), max_length=255, blank=True)
    retries = models.PositiveIntegerField(_("retries"), default=0)
    parent_task_id = models.CharField(_("parent task id"), max_length=255, blank=True)
    # Empty for a task that is its own root (the common case), so the index stays small.
    root_task_id = models.CharField(_("root task id"), max_length=255, blank=True)
    group_id = models.CharField(_("group id"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    received_at = models.DateTimeField(_("received"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    # When reconciliation recorded LOST; kept when the worker's own final state arrives
    # later ("finished after all"), so the record shows both.
    lost_at = models.DateTimeField(_("marked lost"), null=True, blank=True)
    duration = models.FloatField(_("duration (s)"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)
    cancel_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("cancel requested by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    cancel_requested_at = models.DateTimeField(_("cancel requested at"), null=True, blank=True)
    # The call as published (args, kwargs), kept so the task can be retried; None when it
    # could not be kept (secret-looking arguments, too large, not JSON).
    call = models.JSONField(_("call"), null=True, blank=True, editable=False)
    retry_of = models.ForeignKey(
        "self",
        verbose_name=_("retry of"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="retried_as",
        db_index=False,  # tb_exec_retry_of, partial
    )

    objects = TaskExecutionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("task execution")
        verbose_name_plural = _("task executions")
        # Every state change rewrites each index entry of the row (PostgreSQL cannot make
        # it a HOT update), so indexes are few, and partial where most rows are empty.
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="tb_exec_created"),
            models.Index(
                fields=["user", "-created_at"],
                name="tb_exec_user_created",
                condition=Q(user__isnull=False),
            ),
            # A module's rows newest first, covering what its page counts (state, duration):
            # the module page's windows are read from the index alone. (INCLUDE is
            # PostgreSQL's; elsewhere the same index without it.)
            models.Index(
                fields=["module", "-created_at", "-id"],
                name="tb_exec_module_cover",
                include=["state", "duration"],
            ),
            # Queued and running tasks, newest first: finished rows leave this index.
            models.Index(
                fields=["state", "-created_at"],
                name="tb_exec_active",
                condition=Q(state__in=sorted(ACTIVE_STATES)),
            ),
            models.Index(
                fields=["root_task_id"], name="tb_exec_root", condition=~Q(root_task_id="")
            ),
            models.Index(
                fields=["parent_task_id"], name="tb_exec_parent", condition=~Q(parent_task_id="")
            ),
            models.Index(
                fields=["retry_of"], name="tb_exec_retry_of", condition=Q(retry_of__isnull=False)
            ),
            # A task's latest successful runs (its typical duration, shown for queued
            # tasks): a bounded walk per task name, however rare the name, index-only on
            # PostgreSQL (it includes duration). A row enters it once, when it succeeds.
            models.Index(
                fields=["task_name", "-created_at"],
                include=("duration",),
                name="tb_exec_success_dur",
                condition=Q(state=TaskState.SUCCESS),
            ),
            # The list's sort links (tables.py): each walks an index, never sorts the table.
            # display_name and task_name never change, duration and started_at once.
            models.Index(
                fields=["display_name", "task_name", "-created_at", "-id"], name="tb_exec_label"
            ),
            models.Index(fields=["started_at", "id"], name="tb_exec_started"),
            models.Index(fields=["duration", "id"], name="tb_exec_duration"),
            # Search (PostgreSQL): trigram GIN indexes, created by migration 0006 (SQLite has
            # no GIN; its search stays a plain LIKE).
            # Tasks marked LOST, by when: the "any task lost" alert reads those since its
            # last evaluation. A row enters it once, when reconciliation marks it.
            models.Index(
                fields=["lost_at"], name="tb_exec_lost", condition=Q(lost_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.display_name or self.task_name} [{self.task_id}] {self.state}"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def is_running(self) -> bool:
        return self.state in RUNNING_STATES

    @property
    def label(self) -> str:
        return self.display_name or self.task_name

    @property
    def finished_after_all(self) -> bool:
        return is_finished_after_all(self)


class TaskNotification(models.Model):
    """A message for a user about one of their executions (e.g. it finished or failed)."""

    class Level(models.TextChoices):
        INFO = "info", _("Information")
        SUCCESS = "success", _("Success")
        WARNING = "warning", _("Warning")
        ERROR = "error", _("Error")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="task_notifications",
    )
    execution = models.ForeignKey(
        TaskExecution,
        verbose_name=_("task execution"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
    )
    level = models.CharField(_("level"), max_length=16, choices=Level.choices, default=Level.INFO)
    message = models.CharField(_("message"), max_length=500)
    # The final state that caused it (empty for other notifications).
    state = models.CharField(_("state"), max_length=16, choices=TaskState.choices, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)
    emailed_at = models.DateTimeField(_("e-mailed at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("task notification")
        verbose_name_plural = _("task notifications")
        indexes = [
            models.Index(fields=["user", "read_at", "-created_at"], name="tb_notif_user_unread"),
        ]
        constraints = [
            # One notification per execution and user, however often the final signal comes.
            models.UniqueConstraint(
                fields=["execution", "user"],
                condition=Q(execution__isnull=False),
                name="tb_notif_once",
            ),
        ]

    def __str__(self) -> str:
        return self.message

    @property
    def is_read(self) -> bool:
        return self.read_at is not None


class WorkerHeartbeat(models.Model):
    """A worker's own report of itself, upserted every few seconds from its heartbeat.

    The worker panel reads these rows: no broadcast, no Flower. A row whose `last_seen` is
    older than TASKBOARD_WORKER_OFFLINE_AFTER (or that has `stopped_at`) is offline.
    """

    hostname = models.CharField(_("worker"), max_length=255, unique=True)
    pid = models.PositiveIntegerField(_("process id"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    last_seen = models.DateTimeField(_("last seen"), default=timezone.now)
    stopped_at = models.DateTimeField(_("stopped"), null=True, blank=True)
    concurrency = models.PositiveIntegerField(_("concurrency"), null=True, blank=True)
    queues = models.JSONField(_("queues"), default=list, blank=True)
    active = models.JSONField(_("active tasks"), default=list, blank=True)
    processed = models.PositiveBigIntegerField(_("processed"), default=0)
    loadavg = models.JSONField(_("load average"), null=True, blank=True)
    software = models.CharField(_("software"), max_length=100, blank=True)
    # Set while the worker drains its tasks in a warm shutdown: alive, taking no new work.
    draining_since = models.DateTimeField(_("shutting down since"), null=True, blank=True)
    # The worker's own clock when it took the beat (last_seen is the database's clock):
    # compared only with times the same worker wrote, such as a task's started_at.
    clock = models.DateTimeField(_("worker clock"), null=True, blank=True)
    # The tracking write buffers' figures of the worker's processes at the beat (pending,
    # oldest_pending_seconds, written, dropped, spilled...: tracking/figures.py); counters
    # count from the worker's start.
    tracking = models.JSONField(_("tracking writes"), default=dict, blank=True)

    class Meta:
        ordering = ["hostname"]
        verbose_name = _("worker heartbeat")
        verbose_name_plural = _("worker heartbeats")

    def __str__(self) -> str:
        return self.hostname

    @staticmethod
    def online_since(now: datetime) -> datetime:
        """A worker heard from at or after this instant (and not stopped) is online,
        draining or not. `now` should be the database's clock (database_now()): last_seen
        is."""
        return now - timedelta(seconds=conf.WORKER_OFFLINE_AFTER)

    def is_online(self, *, now: datetime | None = None) -> bool:
        """Beating and not stopped. A worker in a warm shutdown (draining_since set) is
        online while it beats: it still runs its tasks, it only takes no new ones."""
        now = database_now() if now is None else now
        return self.stopped_at is None and self.last_seen >= self.online_since(now)

    def is_draining(self, *, now: datetime | None = None) -> bool:
        """In a warm shutdown and still beating: finishing its tasks ("shutting down")."""
        return self.draining_since is not None and self.is_online(now=now)


class DeletedExecutionTotalQuerySet(models.QuerySet["DeletedExecutionTotal"]):
    def tallies(self) -> models.QuerySet[Any, Any]:
        """The totals in the shape (and column order) of TaskExecutionQuerySet.tallies(),
        so the two read as one statement (a union, which takes the names of the first:
        these differ only where a field already has the name); `oldest` is always None."""
        timed = Q(bucket__gte=0)
        return (
            self.order_by()
            .values("module", "task_name", "state", "lost")
            .annotate(
                total_executions=models.Sum("executions"),
                total_duration_count=models.Sum("executions", filter=timed),
                total_duration_sum=models.Sum("duration_sum"),
                **{
                    f"le_{index}": models.Sum("executions", filter=timed & Q(bucket__lte=index))
                    for index in range(len(DURATION_BUCKETS))
                },
                oldest=models.Value(None, output_field=models.DateTimeField()),
            )
        )


class DeletedExecutionTotal(models.Model):
    """What deleted executions add to the metrics' counters: one row per (module,
    task_name, state, lost, bucket), `bucket` the index of duration_bucket(), added to in
    the same transaction as the rows are deleted (services/totals.py), so a counter (live
    rows + these) never goes back when retention or a person deletes finished executions."""

    module = models.CharField(_("module"), max_length=64, blank=True)
    task_name = models.CharField(_("task name"), max_length=255)
    state = models.CharField(_("state"), max_length=16, choices=TaskState.choices)
    lost = models.BooleanField(_("marked lost"), default=False)
    bucket = models.SmallIntegerField(_("duration bucket"), default=NO_DURATION)
    executions = models.PositiveBigIntegerField(_("executions"), default=0)
    duration_sum = models.FloatField(_("total duration (s)"), default=0.0)

    objects = DeletedExecutionTotalQuerySet.as_manager()

    class Meta:
        verbose_name = _("deleted executions total")
        verbose_name_plural = _("deleted executions totals")
        constraints = [
            models.UniqueConstraint(
                fields=["module", "task_name", "state", "lost", "bucket"],
                name="tb_deleted_total_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.module} {self.task_name} {self.state}: {self.executions}"


class NotificationPreference(models.Model):
    """Which final states notify a user (no row: every one, no e-mail)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="taskboard_preferences",
    )
    on_success = models.BooleanField(_("when a task succeeds"), default=True)
    on_failure = models.BooleanField(_("when a task fails"), default=True)
    on_revoked = models.BooleanField(_("when a task is cancelled"), default=True)
    on_lost = models.BooleanField(_("when a task is lost"), default=True)
    email_failures = models.BooleanField(_("e-mail me failures"), default=False)

    class Meta:
        verbose_name = _("notification preference")
        verbose_name_plural = _("notification preferences")

    def __str__(self) -> str:
        return str(self.user)


def database_now() -> datetime:
    """The database server's clock: liveness is judged by one clock, whatever the
    workers' clocks say."""
    from django.db import connection

    if connection.vendor == "sqlite":  # one machine: the database's clock is this one
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_TIMESTAMP")
        (value,) = cursor.fetchone()
    moment: datetime = value
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


@functools.cache
def _max_length(model: type[models.Model], name: str) -> int:
    length = model._meta.get_field(name).max_length  # type: ignore[union-attr]
    assert isinstance(length, int), f"{model.__name__}.{name} has no max_length"
    return length


def capped(name: str, value: str, model: type[models.Model] | None = None) -> str:
    """value cut to the max_length of field `name` (of TaskExecution unless `model` is
    given): tracking data never fails a write for being long."""
    return value[: _max_length(model or TaskExecution, name)]


# Alert rules and alerts are taskboard models too (declared in their own module; the
# `X as X` form re-exports them).
from taskboard.models_alerts import (  # noqa: E402, I001
    Alert as Alert,
    AlertChannel as AlertChannel,
    AlertDelivery as AlertDelivery,
    AlertKind as AlertKind,
    AlertRule as AlertRule,
    AlertSeverity as AlertSeverity,
    AlertSilence as AlertSilence,
    AlertTransition as AlertTransition,
    WebhookFormat as WebhookFormat,
)
