"""Automatic tracking of every Celery task: the Celery signal handlers.

Runs in web processes (publishing) and in Celery workers. Like all of taskboard.tracking it
imports models, conf and signals only, never selectors, services, views or HTTP code, and it
never raises into the user's task: a tracking error is logged and swallowed.
"""

from __future__ import annotations

import atexit
import functools
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from celery import signals
from django.db import connection
from django.utils import timezone

from taskboard.conf import conf
from taskboard.models import SAME_WORKER_ONLY, TaskExecution, TaskState, capped
from taskboard.tracking import logformats as logformats  # connects its worker_init
from taskboard.tracking import summaries
from taskboard.tracking.guard import never_raise
from taskboard.tracking.ownership import OWNER_HEADER, in_request, resolve_owner
from taskboard.tracking.recorder import Write, buffer, insert
from taskboard.tracking.registry import meta_for
from taskboard.tracking.running import (
    PUBLISHED_HEADER,
    Running,
    TaskCancelled,
    field_of,
    identity,
    running_tasks,
    task_lookup,
)


@signals.worker_init.connect(weak=False, dispatch_uid="taskboard.refuse_cancelled")
def refuse_cancelled(**_: Any) -> None:
    """Celery's revoke is a broadcast to the workers up at that moment; a worker starting
    later learns them only from running peers (mingle). With every worker down, a task
    cancelled while queued would run anyway: the database remembers, so each worker adds
    those ids to its revoked set before it consumes anything."""
    from celery.worker import state

    with never_raise("loading cancelled tasks"):
        for task_id in TaskExecution.objects.cancelled_unfinished_ids(limit=state.REVOKES_MAX):
            state.revoked.add(task_id)
    # The pool forks next: it inherits no open connection. (Not inside a transaction: an
    # in-process test worker of an embedding project runs within its test's.)
    if not connection.in_atomic_block:
        with never_raise("closing the connection"):
            connection.close()


# --- Publishing (web process, or a worker launching child tasks) ------------------------


@signals.before_task_publish.connect(weak=False, dispatch_uid="taskboard.publish")
def on_before_task_publish(
    sender: str | None = None,
    body: Any = None,
    headers: dict[str, Any] | None = None,
    routing_key: str | None = None,
    **_: Any,
) -> None:
    if headers is None or not conf.ENABLED:
        return
    with never_raise("publish"):
        task_id = headers.get("id")
        name = headers.get("task") or sender
        if not task_id or not name:
            return
        meta = meta_for(str(name))
        if not meta.tracked:
            return
        args, kwargs = (body[0], body[1]) if isinstance(body, list | tuple) else ((), {})
        owner = resolve_owner(meta, args, kwargs)
        if owner is not None:
            headers[OWNER_HEADER] = owner
        headers.setdefault(PUBLISHED_HEADER, time.time())
        if headers.get("retries"):
            return  # a retry re-publishes an id that is already recorded
        row = {
            **identity(meta, args, kwargs, owner, headers),
            "task_id": str(task_id),
            "state": TaskState.PENDING,
            "queue": capped("queue", routing_key or ""),
        }
        if in_request():
            insert([row])  # someone is waiting to see it: visible before the response
        else:
            buffer.insert(row, delay=conf.WRITE_DELAY)  # batched with the next ones


# --- In the worker ---------------------------------------------------------------------


@signals.task_received.connect(weak=False, dispatch_uid="taskboard.received")
def on_task_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    with never_raise("received"):
        if request is None or not meta_for(request.name).tracked:
            return
        write = Write(
            task_lookup(request.id),
            TaskState.RECEIVED,
            {
                "received_at": timezone.now(),
                "worker": capped("worker", str(request.hostname or "")),
            },
            still_needed=functools.partial(_still_waiting, weakref.ref(request)),
        )
        # The consumer must never wait on the database; and a task that a pool process
        # picks up at once is recorded by that process, so RECEIVED costs nothing then.
        buffer.put(write, delay=conf.STARTED_WRITE_DELAY)


def _still_waiting(request_ref: weakref.ref[Any]) -> bool:
    """Is this worker still holding the task without running it (prefetched, or an ETA)?"""
    from celery.worker import state

    request = request_ref()
    if request is None or request in state.active_requests:
        return False
    scheduled = getattr(state, "scheduled_requests", ())  # ETA tasks not yet due
    return request.id in state.requests or request in scheduled


@signals.task_prerun.connect(weak=False, dispatch_uid="taskboard.prerun")
def on_task_prerun(
    sender: Any = None,
    task_id: str | None = None,
    task: Any = None,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    **_: Any,
) -> None:
    with never_raise("prerun"):
        if task is None or task_id is None:
            return
        meta = meta_for(task.name)
        if not meta.tracked:
            return
        request = task.request
        delivery = getattr(request, "delivery_info", None) or {}
        run = Running(
            task_id=task_id,
            meta=meta,
            started_at=timezone.now(),
            started_monotonic=time.monotonic(),
            worker=capped("worker", str(getattr(request, "hostname", "") or "")),
            queue=capped("queue", str(delivery.get("routing_key") or "")),
            retries=int(getattr(request, "retries", 0) or 0),
            args=tuple(args or ()),
            kwargs=dict(kwargs or {}),
            carried_owner=getattr(request, OWNER_HEADER, None),
            lineage={
                k: field_of(request, k)
                for k in ("id", "parent_id", "root_id", "group", PUBLISHED_HEADER)
            },
        )
        running_tasks[task_id] = run
        # Deferred: a task shorter than the delay is recorded by its final write alone.
        buffer.put(
            Write(task_lookup(task_id), TaskState.STARTED, run.fields(), create=run.identity),
            delay=conf.STARTED_WRITE_DELAY,
        )


# An earlier attempt's error is history once the task succeeds (only a retried task has one).
_CLEARED_ERROR = {"exception_type": "", "exception_message": "", "traceback": ""}


def _finish(task_id: str, state: str, fields: dict[str, Any]) -> None:
    """A final (or RETRY) write that absorbs whatever is pending for the task."""
    pending = buffer.take(task_lookup(task_id))
    run = running_tasks.get(task_id)
    merged: dict[str, Any] = dict(pending.fields) if pending else {}
    if run is not None:
        merged.update(run.fields())
        if state in (TaskState.SUCCESS, TaskState.FAILURE):
            merged["duration"] = run.elapsed()
    merged.update(fields)
    if state == TaskState.SUCCESS and (run is None or run.retries == 0):
        for name in _CLEARED_ERROR:
            merged.pop(name, None)  # nothing to clear: fewer columns to write
    create = run.identity if run is not None else (pending.create if pending else None)
    conditions: dict[str, Any] = {}
    if state == TaskState.RETRY and run is not None:
        conditions["retries__lte"] = run.retries  # never overtake a newer attempt
    if state in SAME_WORKER_ONLY and run is not None and run.worker:
        # A fact beats an inference: this worker's own SUCCESS/FAILURE replaces a LOST
        # that reconciliation recorded meanwhile (lost_at stays), never another's.
        conditions["worker_if_lost"] = run.worker
    buffer.put(
        Write(task_lookup(task_id), state, merged, conditions=conditions, create=create),
        delay=conf.WRITE_DELAY,
    )


@signals.task_success.connect(weak=False, dispatch_uid="taskboard.success")
def on_task_success(sender: Any = None, result: Any = None, **_: Any) -> None:
    with never_raise("success"):
        task_id = getattr(getattr(sender, "request", None), "id", None)
        if not task_id or task_id not in running_tasks:
            return
        _finish(
            task_id,
            TaskState.SUCCESS,
            {
                "finished_at": timezone.now(),
                "progress": 100,
                "result_summary": summaries.to_text(result),
                **_CLEARED_ERROR,
            },
        )


@signals.task_failure.connect(weak=False, dispatch_uid="taskboard.failure")
def on_task_failure(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    with never_raise("failure"):
        if not task_id or task_id not in running_tasks:
            return
        if isinstance(exception, TaskCancelled):
            _finish(
                task_id,
                TaskState.REVOKED,
                {
                    "finished_at": timezone.now(),
                    "exception_type": "taskboard.tracking.TaskCancelled",
                    "exception_message": "Cancelled while running",
                },
            )
            return
        kind, message = summaries.exception_summary(exception or Exception())
        _finish(
            task_id,
            TaskState.FAILURE,
            {
                "finished_at": timezone.now(),
                "exception_type": kind,
                "exception_message": message,
                "traceback": summaries.traceback_summary(getattr(einfo, "traceback", "")),
            },
        )


# --- A pool process that died (the worker's main process reports it) ------------------


@signals.task_failure.connect(weak=False, dispatch_uid="taskboard.worker_lost")
def on_worker_lost(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    **_: Any,
) -> None:
    """The pool process running the task died (killed by the OOM killer, or the task ended
    its own process): Celery's main process sends task_failure with WorkerLostError from
    Request.on_failure; the pool process itself never reports anything. Recorded LOST at
    once: the task did not fail on its own terms, it stopped with its process.

    Not sent when the message is given back to the broker instead (an idempotent task:
    acks_late + reject_on_worker_lost): its next run records itself, and a row no worker
    runs any more is reconciled from the heartbeats (services.reconcile)."""
    from celery.exceptions import WorkerLostError

    with never_raise("worker lost"):
        if not task_id or not isinstance(exception, WorkerLostError):
            return
        name = getattr(sender, "name", None)
        if not name or not meta_for(str(name)).tracked:
            return
        meta = meta_for(str(name))
        request = getattr(sender, "request", None)
        hostname = str(getattr(request, "hostname", "") or "")
        now = timezone.now()
        call_args, call_kwargs = tuple(args or ()), dict(kwargs or {})
        owner = resolve_owner(meta, call_args, call_kwargs, getattr(request, OWNER_HEADER, None))
        # Sent in the consumer, which must not wait on the database: written behind, now.
        buffer.put(
            Write(
                task_lookup(task_id),
                TaskState.LOST,
                {
                    "finished_at": now,
                    "lost_at": now,
                    "exception_type": "WorkerLostError",
                    "exception_message": summaries.safe_text(
                        f"The process running the task on worker {hostname} died: {exception}"
                    ),
                    **({"worker": capped("worker", hostname)} if hostname else {}),
                },
                # Only if the publisher's row is missing (computed by the flushing thread).
                create=lambda: identity(meta, call_args, call_kwargs, owner, request),
            )
        )


@signals.task_retry.connect(weak=False, dispatch_uid="taskboard.retry")
def on_task_retry(
    sender: Any = None, request: Any = None, reason: Any = None, einfo: Any = None, **_: Any
) -> None:
    with never_raise("retry"):
        task_id = getattr(request, "id", None)
        if not task_id or task_id not in running_tasks:
            return
        cause = getattr(reason, "exc", None) or reason
        kind, message = summaries.exception_summary(
            cause if isinstance(cause, BaseException) else Exception(str(cause))
        )
        _finish(
            task_id,
            TaskState.RETRY,
            {
                "retries": int(getattr(request, "retries", 0) or 0) + 1,
                "exception_type": kind,
                "exception_message": message,
                "traceback": summaries.traceback_summary(getattr(einfo, "traceback", "")),
            },
        )


@signals.task_revoked.connect(weak=False, dispatch_uid="taskboard.revoked")
def on_task_revoked(
    sender: Any = None,
    request: Any = None,
    terminated: bool = False,
    signum: Any = None,
    expired: bool = False,
    **_: Any,
) -> None:
    with never_raise("revoked"):
        task_id = getattr(request, "id", None)
        name = getattr(sender, "name", None) or getattr(request, "task", None)
        if not task_id or not name:
            return
        meta = meta_for(str(name))
        if not meta.tracked:
            return
        if terminated:
            message = f"Terminated ({_signal_name(signum)})"
        elif expired:
            message = "Expired before it could run"
        else:
            message = "Revoked before it started"
        args = getattr(request, "args", None) or ()
        kwargs = getattr(request, "kwargs", None) or {}
        owner = resolve_owner(meta, args, kwargs, getattr(request, OWNER_HEADER, None))
        fields = identity(meta, args, kwargs, owner, request)
        # Sent in the consumer (the worker's main process), which must not wait on the DB.
        buffer.put(
            Write(
                task_lookup(task_id),
                TaskState.REVOKED,
                {
                    "finished_at": timezone.now(),
                    "exception_type": "celery.exceptions.TaskRevokedError",
                    "exception_message": message,
                    "worker": capped("worker", str(getattr(request, "hostname", "") or "")),
                },
                create=lambda: fields,
            )
        )


def _signal_name(signum: Any) -> str:
    import signal as _signal

    try:
        return _signal.Signals(int(signum)).name
    except (TypeError, ValueError):
        return str(signum or "SIGTERM")


@signals.task_postrun.connect(weak=False, dispatch_uid="taskboard.postrun")
def on_task_postrun(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
    with never_raise("postrun"):
        if task_id:
            running_tasks.pop(task_id, None)


@signals.worker_process_shutdown.connect(weak=False, dispatch_uid="taskboard.process_shutdown")
@signals.worker_shutdown.connect(weak=False, dispatch_uid="taskboard.worker_shutdown")
def on_worker_shutdown(**_: Any) -> None:
    with never_raise("shutdown flush"):
        buffer.stop()


atexit.register(buffer.flush)
