"""The explicit tracking API (the seed's calls): for scripts, and for tasks that report
their progress or track themselves by hand."""

from __future__ import annotations

import time
from typing import Any

from celery import current_task
from django.db import IntegrityError, InterfaceError, OperationalError
from django.utils import timezone

from taskboard.models import TaskExecution, TaskState, capped
from taskboard.tracking import summaries
from taskboard.tracking.guard import log_failure, logger, never_raise
from taskboard.tracking.ownership import user_id_of
from taskboard.tracking.recorder import Lookup, Write, apply, buffer
from taskboard.tracking.running import Running, TaskCancelled, running_tasks, task_lookup
from taskboard.tracking.stamps import stamp_bump

_pk_to_task_id: dict[int, str] = {}


def execution_lookup(execution_id: int | str | TaskExecution) -> Lookup:
    if isinstance(execution_id, TaskExecution):
        return task_lookup(execution_id.task_id)
    if isinstance(execution_id, int):
        task_id = _pk_to_task_id.get(execution_id)
        return task_lookup(task_id) if task_id else ("pk", execution_id)
    if isinstance(execution_id, str) and execution_id.isdigit():
        return execution_lookup(int(execution_id))
    return task_lookup(str(execution_id))


def start_task_tracking(
    task_id: str,
    task_name: str,
    module: str,
    user: Any = None,
    display_name: str | None = None,
) -> TaskExecution:
    """Return the execution of task_id, creating it if automatic tracking has not.

    Never raises into the caller (tracking must not break the task): when the database
    cannot take the row, the error is logged and an unsaved execution is returned; the
    row is then handed to the write buffer when the database is merely away (written
    once it is back), and progress reported against it lands once the row exists."""
    task_id = str(task_id)
    defaults: dict[str, Any] = {}
    try:
        defaults = _tracking_defaults(task_id, task_name, module, user, display_name)
        return _start(task_id, defaults, rename=bool(display_name))
    except Exception as exc:
        log_failure("taskboard: could not start tracking %s", task_id)
        if isinstance(exc, OperationalError | InterfaceError):
            buffer.insert({**defaults, "task_id": task_id}, delay=0.0)
        return TaskExecution(task_id=task_id, **defaults)


def _tracking_defaults(
    task_id: str, task_name: str, module: str, user: Any, display_name: str | None
) -> dict[str, Any]:
    owner = user if isinstance(user, int) else user_id_of(user)
    run = running_tasks.get(task_id)
    # Inside the running task the worker knows the real identity (Celery name, owner, ...).
    defaults: dict[str, Any] = run.identity() if run is not None else {}
    defaults.update(module=_field("module", module))
    defaults.setdefault("task_name", _field("task_name", task_name))
    if display_name or run is None:
        defaults["display_name"] = _field("display_name", display_name or task_name)
    if owner is not None:
        defaults["user_id"] = owner
    return defaults


def _field(name: str, value: Any) -> str:
    """A text field given by the caller, fit to be stored (no NUL, secrets redacted)."""
    return capped(name, summaries.safe_text(str(value or "")))


def _start(task_id: str, defaults: dict[str, Any], *, rename: bool) -> TaskExecution:
    try:
        execution, created = TaskExecution.objects.get_or_create(task_id=task_id, defaults=defaults)
    except IntegrityError:  # created by a signal handler in another process meanwhile
        execution, created = TaskExecution.objects.get(task_id=task_id), False
    if not created:
        changes: dict[str, Any] = {"module": defaults["module"]}
        if rename:
            changes["display_name"] = defaults["display_name"]
        if defaults.get("user_id") is not None and execution.user_id is None:
            changes["user_id"] = defaults["user_id"]
        TaskExecution.objects.filter(pk=execution.pk).update(**changes)
        stamp_bump()
        for name, value in changes.items():
            setattr(execution, name, value)
    _pk_to_task_id[execution.pk] = execution.task_id
    return execution


CANCEL_CHECK_SECONDS = 1.0  # a running task looks for a cancel request at most this often


def update_task_progress(
    execution_id: int | str | TaskExecution, progress: float, message: str = ""
) -> None:
    """Record progress (0–100). Coalesced: a bounded number of writes per second per task;
    the last value always lands. Inside the running task, raises TaskCancelled once someone
    asked to cancel it (cancelling is cooperative: progress reports are the checkpoints)."""
    lookup = execution_lookup(execution_id)
    run = running_tasks.get(lookup[1]) if lookup[0] == "task_id" else None
    with never_raise("progress"):
        percent = max(0, min(100, int(progress)))
        buffer.put(
            Write(
                lookup,
                TaskState.PROGRESS,
                {"progress": percent, "progress_message": _field("progress_message", message)},
                create=run.identity if run is not None else None,
            )
        )
    if run is not None and _cancel_requested(run):
        raise TaskCancelled(f"Task {run.task_id} was cancelled")


def _cancel_requested(run: Running) -> bool:
    now = time.monotonic()
    if now - run.cancel_checked < CANCEL_CHECK_SECONDS:
        return False
    run.cancel_checked = now
    with never_raise("cancel check"):
        return TaskExecution.objects.filter(
            task_id=run.task_id, cancel_requested_at__isnull=False
        ).exists()
    return False


def report_progress(current: float, total: float, message: str = "") -> None:
    """From inside a running task: progress as `current` of `total` steps."""
    request = getattr(current_task, "request", None) if current_task else None
    task_id = getattr(request, "id", None)
    if not task_id:
        logger.warning("taskboard: report_progress() called outside a running task")
        return
    percent = 100 if total <= 0 else current * 100 / total
    update_task_progress(task_id, percent, message)


def finish_task(
    execution_id: int | str | TaskExecution,
    success: bool = True,
    result: Any = None,
    error: str | BaseException | None = None,
) -> None:
    """Mark an execution finished by hand (the seed's explicit API)."""
    lookup = execution_lookup(execution_id)
    pending = buffer.take(lookup)
    now = timezone.now()
    row = (
        TaskExecution.objects.filter(**{lookup[0]: lookup[1]})
        .only("started_at", "created_at")
        .first()
    )
    fields: dict[str, Any] = dict(pending.fields) if pending else {}
    fields["finished_at"] = now
    if row is not None:
        fields["duration"] = (now - (row.started_at or row.created_at)).total_seconds()
    if success:
        fields.update(progress=100, result_summary=summaries.to_text(result))
        state = TaskState.SUCCESS
    else:
        exc = error if isinstance(error, BaseException) else Exception(str(error or ""))
        kind, message = summaries.exception_summary(exc)
        fields.update(
            exception_type=kind if isinstance(error, BaseException) else "",
            exception_message=message,
        )
        state = TaskState.FAILURE
    apply(Write(lookup, state, fields))


def flush_writes() -> None:
    """Write everything this process holds back, now (e.g. before reading it back)."""
    buffer.flush()
