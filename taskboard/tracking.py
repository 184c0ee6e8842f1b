"""Automatic tracking of every Celery task, plus the explicit tracking API.

Runs in web processes (publishing) and in Celery workers. It imports models and the
recorder only, never views or HTTP code, and it never raises into the user's task: a
tracking error is logged and swallowed.
"""

from __future__ import annotations

import atexit
import fnmatch
import functools
import inspect
import logging
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from celery import current_app, current_task, signals
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection
from django.utils import timezone

from taskboard import parameters, summaries
from taskboard.calls import call_record
from taskboard.conf import conf
from taskboard.context import current_user_id, in_request, user_id_of
from taskboard.models import TaskExecution, TaskState, TaskTemplate
from taskboard.recorder import Lookup, Write, apply, buffer, insert
from taskboard.selectors import execution_cancelled_unfinished_ids

logger = logging.getLogger("taskboard.tracking")

# Message header that carries the launching user to the worker (and to child tasks).
OWNER_HEADER = "taskboard_user_id"
# When it was published (epoch seconds), so whichever process creates the row dates it right.
PUBLISHED_HEADER = "taskboard_published"
SPEC_ATTRIBUTE = "taskboard_spec"


@contextmanager
def _never_raise(where: str) -> Iterator[None]:
    try:
        yield
    except Exception:
        logger.exception("taskboard: tracking failed in %s (the task itself is unaffected)", where)


# --- What we know about a task ---------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """What @track_task declares: template key, module and display name."""

    key: str
    module: str
    display_name: str
    description: str = ""
    # Initial values of the launch form (JSON); the admin may edit them afterwards.
    default_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class TaskMeta:
    name: str
    module: str
    display_name: str
    template: TaskSpec | None
    param_names: tuple[str, ...] = ()

    @property
    def tracked(self) -> bool:
        if not conf.ENABLED:
            return False
        if any(fnmatch.fnmatchcase(self.name, pattern) for pattern in conf.EXCLUDE):
            return False
        return conf.TRACK == "all" or self.template is not None

    def owner_from_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int | None:
        """The seed's convention: a `user_id` argument names the task's owner."""
        value = kwargs.get("user_id")
        if value is None and "user_id" in self.param_names:
            index = self.param_names.index("user_id")
            value = args[index] if index < len(args) else None
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return None


_registry: dict[str, TaskSpec] = {}


def default_module(task_name: str) -> str:
    """The module of an undecorated task: "nomina" for "sgm.nomina.tasks.x" or "nomina.x"."""
    parts = [p for p in task_name.split(".") if p]
    if len(parts) > 1 and parts[0] == "sgm":
        parts = parts[1:]
    return parts[0][:64] if len(parts) > 1 else ""


def _param_names(task: Any) -> tuple[str, ...]:
    """Positional parameter names of the task's function (without a bound task's self)."""
    try:
        parameters = inspect.signature(task.run).parameters.values()
    except (AttributeError, TypeError, ValueError):
        return ()
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in parameters if p.kind in positional)


_meta_cache: dict[str, TaskMeta] = {}


def meta_for(task_name: str) -> TaskMeta:
    meta = _meta_cache.get(task_name)
    if meta is None:
        meta = _build_meta(task_name)
        if current_app.tasks.get(task_name) is not None:  # unknown names may register later
            _meta_cache[task_name] = meta
    return meta


def _build_meta(task_name: str) -> TaskMeta:
    task = current_app.tasks.get(task_name)
    spec = getattr(getattr(task, "run", None), SPEC_ATTRIBUTE, None) or getattr(
        task, SPEC_ATTRIBUTE, None
    )
    return TaskMeta(
        name=task_name,
        module=spec.module if spec else default_module(task_name),
        display_name=spec.display_name if spec else task_name.rsplit(".", 1)[-1],
        template=spec,
        param_names=_param_names(task) if task is not None else (),
    )


_synced_templates: set[str] = set()


def _template_key(meta: TaskMeta) -> str | None:
    """The template's key, making sure its row exists (once per process)."""
    spec = meta.template
    if spec is None:
        return None
    if spec.key not in _synced_templates:
        sync_template(spec, task_name=meta.name)
    return spec.key


def sync_template(spec: TaskSpec, *, task_name: str = "") -> None:
    defaults: dict[str, Any] = {"module": spec.module, "display_name": spec.display_name}
    if task_name:
        defaults["task_name"] = task_name
        task = current_app.tasks.get(task_name)
        if task is not None:
            defaults["parameters"] = parameters.describe(task.run)
    # The description and default kwargs are the admin's to edit: the code only fills them in.
    editable = {"description": spec.description, "default_kwargs": dict(spec.default_kwargs)}
    try:
        TaskTemplate.objects.update_or_create(
            key=spec.key, defaults=defaults, create_defaults={**defaults, **editable}
        )
    except IntegrityError:  # another process created it first
        TaskTemplate.objects.filter(key=spec.key).update(**defaults)
    if spec.description:
        TaskTemplate.objects.filter(key=spec.key, description="").update(
            description=spec.description
        )
    if spec.default_kwargs:
        TaskTemplate.objects.filter(key=spec.key, default_kwargs={}).update(
            default_kwargs=dict(spec.default_kwargs)
        )
    _synced_templates.add(spec.key)


def sync_templates(**_: Any) -> None:
    """Register every @track_task template (after migrate, and when a worker starts)."""
    with _never_raise("template sync"):
        current_app.loader.import_default_modules()  # the task modules declare them
        named: dict[str, str] = {}
        for task in list(current_app.tasks.values()):
            spec = getattr(getattr(task, "run", None), SPEC_ATTRIBUTE, None)
            if spec is not None:
                named[spec.key] = task.name
        for spec in _registry.values():
            sync_template(spec, task_name=named.get(spec.key, ""))


signals.worker_ready.connect(sync_templates, weak=False, dispatch_uid="taskboard.worker_ready")


@signals.worker_init.connect(weak=False, dispatch_uid="taskboard.refuse_cancelled")
def refuse_cancelled(**_: Any) -> None:
    """Celery's revoke is a broadcast to the workers up at that moment; a worker starting
    later learns them only from running peers (mingle). With every worker down, a task
    cancelled while queued would run anyway: the database remembers, so each worker adds
    those ids to its revoked set before it consumes anything."""
    from celery.worker import state

    with _never_raise("loading cancelled tasks"):
        for task_id in execution_cancelled_unfinished_ids(limit=state.REVOKES_MAX):
            state.revoked.add(task_id)
    # The pool forks next: it inherits no open connection. (Not inside a transaction: an
    # in-process test worker of an embedding project runs within its test's.)
    if not connection.in_atomic_block:
        with _never_raise("closing the connection"):
            connection.close()


# --- @track_task -----------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def track_task(
    key: str,
    module: str,
    display_name: str | None = None,
    *,
    description: str = "",
    default_kwargs: Mapping[str, Any] | None = None,
) -> Callable[[F], F]:
    """Declare a task's template key, module and display name (and, for its launch form,
    a description and default kwargs; its parameters are read from the signature).

    Stacks under ``@shared_task`` (or over it)::

        @shared_task(bind=True)
        @track_task("nomina.consolidar", "nomina", "Consolidar nómina")
        def consolidar_nomina(self, periodo_id, user_id): ...
    """
    spec = TaskSpec(
        key=key,
        module=module,
        display_name=display_name or key,
        description=description,
        default_kwargs={k: parameters.json_safe(v) for k, v in (default_kwargs or {}).items()},
    )

    def decorator(obj: F) -> F:
        _registry[key] = spec
        target = inspect.unwrap(obj) if inspect.isfunction(obj) else obj
        setattr(target, SPEC_ATTRIBUTE, spec)
        _meta_cache.clear()
        return obj

    return decorator


# --- Publishing (web process, or a worker launching child tasks) ------------------------


def _parent_owner() -> int | None:
    request = getattr(current_task, "request", None) if current_task else None
    value = getattr(request, OWNER_HEADER, None) if request is not None else None
    return value if isinstance(value, int) else None


def _identity(
    meta: TaskMeta,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    owner: int | None,
    request: Any,
) -> dict[str, Any]:
    """The fields that identify an execution, known to publisher and worker alike."""
    published = _get(request, PUBLISHED_HEADER)
    return {
        "created_at": _from_epoch(published) if published else timezone.now(),
        "task_name": meta.name[:255],
        "display_name": meta.display_name[:255],
        "module": meta.module,
        "template_id": _template_key(meta),
        "user_id": owner,
        "args_summary": summaries.args_summary(args, meta.param_names),
        "kwargs_summary": summaries.kwargs_summary(kwargs),
        "call": call_record(args, kwargs, meta.param_names),
        "parent_task_id": _get(request, "parent_id"),
        "root_task_id": _root(request),
        "group_id": _get(request, "group"),
    }


def _from_epoch(value: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (ValueError, OverflowError):
        return timezone.now()


def _root(source: Any) -> str:
    root = _get(source, "root_id")
    return "" if root == _get(source, "id") else root


def _get(source: Any, name: str) -> str:
    value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
    return str(value)[:255] if value else ""


def _existing_user(user_id: int | None) -> int | None:
    # A user_id argument is the caller's data: it may name no user, and a dangling foreign
    # key would fail the write (or, deferred, the caller's own transaction).
    if user_id is None or not get_user_model().objects.filter(pk=user_id).exists():
        return None
    return user_id


def resolve_owner(
    meta: TaskMeta, args: Sequence[Any], kwargs: Mapping[str, Any], carried: Any = None
) -> int | None:
    """Who owns a task: the launching request's user, else the one its message carries,
    else a `user_id` argument, else the owner of the task that launched it."""
    owner = current_user_id()
    if owner is None and isinstance(carried, int) and not isinstance(carried, bool):
        owner = carried
    if owner is None:
        owner = _existing_user(meta.owner_from_arguments(args, kwargs))
    if owner is None:
        owner = _parent_owner()
    return owner


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
    with _never_raise("publish"):
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
            **_identity(meta, args, kwargs, owner, headers),
            "task_id": str(task_id),
            "state": TaskState.PENDING,
            "queue": (routing_key or "")[:255],
        }
        if in_request():
            insert([row])  # someone is waiting to see it: visible before the response
        else:
            buffer.insert(row, delay=conf.WRITE_DELAY)  # batched with the next ones


# --- In the worker ---------------------------------------------------------------------


@dataclass
class Running:
    """What a worker process knows about a task it is running (no DB read needed)."""

    task_id: str
    meta: TaskMeta
    started_at: datetime
    started_monotonic: float
    worker: str
    queue: str
    retries: int
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    carried_owner: Any = None
    lineage: dict[str, str] = field(default_factory=dict)
    cancel_checked: float = 0.0

    def fields(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "worker": self.worker,
            "queue": self.queue,
            "retries": self.retries,
        }

    def identity(self) -> dict[str, Any]:
        """Fields to create the row with, computed only if the publisher did not record it."""
        owner = resolve_owner(self.meta, self.args, self.kwargs, self.carried_owner)
        return _identity(self.meta, self.args, self.kwargs, owner, self.lineage)

    def elapsed(self) -> float:
        return time.monotonic() - self.started_monotonic


_running: dict[str, Running] = {}


def _lookup(task_id: str) -> Lookup:
    return ("task_id", task_id)


@signals.task_received.connect(weak=False, dispatch_uid="taskboard.received")
def on_task_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    with _never_raise("received"):
        if request is None or not meta_for(request.name).tracked:
            return
        write = Write(
            _lookup(request.id),
            TaskState.RECEIVED,
            {"received_at": timezone.now(), "worker": str(request.hostname or "")[:255]},
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
    with _never_raise("prerun"):
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
            worker=str(getattr(request, "hostname", "") or "")[:255],
            queue=str(delivery.get("routing_key") or "")[:255],
            retries=int(getattr(request, "retries", 0) or 0),
            args=tuple(args or ()),
            kwargs=dict(kwargs or {}),
            carried_owner=getattr(request, OWNER_HEADER, None),
            lineage={
                k: _get(request, k)
                for k in ("id", "parent_id", "root_id", "group", PUBLISHED_HEADER)
            },
        )
        _running[task_id] = run
        # Deferred: a task shorter than the delay is recorded by its final write alone.
        buffer.put(
            Write(_lookup(task_id), TaskState.STARTED, run.fields(), create=run.identity),
            delay=conf.STARTED_WRITE_DELAY,
        )


# An earlier attempt's error is history once the task succeeds (only a retried task has one).
_CLEARED_ERROR = {"exception_type": "", "exception_message": "", "traceback": ""}


def _finish(task_id: str, state: str, fields: dict[str, Any]) -> None:
    """A final (or RETRY) write that absorbs whatever is pending for the task."""
    pending = buffer.take(_lookup(task_id))
    run = _running.get(task_id)
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
    conditions = {}
    if state == TaskState.RETRY and run is not None:
        conditions["retries__lte"] = run.retries  # never overtake a newer attempt
    buffer.put(
        Write(_lookup(task_id), state, merged, conditions=conditions, create=create),
        delay=conf.WRITE_DELAY,
    )


@signals.task_success.connect(weak=False, dispatch_uid="taskboard.success")
def on_task_success(sender: Any = None, result: Any = None, **_: Any) -> None:
    with _never_raise("success"):
        task_id = getattr(getattr(sender, "request", None), "id", None)
        if not task_id or task_id not in _running:
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
    with _never_raise("failure"):
        if not task_id or task_id not in _running:
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


@signals.task_retry.connect(weak=False, dispatch_uid="taskboard.retry")
def on_task_retry(
    sender: Any = None, request: Any = None, reason: Any = None, einfo: Any = None, **_: Any
) -> None:
    with _never_raise("retry"):
        task_id = getattr(request, "id", None)
        if not task_id or task_id not in _running:
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
    with _never_raise("revoked"):
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
        identity = _identity(meta, args, kwargs, owner, request)
        # Sent in the consumer (the worker's main process), which must not wait on the DB.
        buffer.put(
            Write(
                _lookup(task_id),
                TaskState.REVOKED,
                {
                    "finished_at": timezone.now(),
                    "exception_type": "celery.exceptions.TaskRevokedError",
                    "exception_message": message,
                    "worker": str(getattr(request, "hostname", "") or "")[:255],
                },
                create=lambda: identity,
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
    with _never_raise("postrun"):
        if task_id:
            _running.pop(task_id, None)


@signals.worker_process_shutdown.connect(weak=False, dispatch_uid="taskboard.process_shutdown")
@signals.worker_shutdown.connect(weak=False, dispatch_uid="taskboard.worker_shutdown")
def on_worker_shutdown(**_: Any) -> None:
    with _never_raise("shutdown flush"):
        buffer.stop()


atexit.register(buffer.flush)


# --- The explicit API (the seed's calls) ----------------------------------------------

_pk_to_task_id: dict[int, str] = {}


def execution_lookup(execution_id: int | str | TaskExecution) -> Lookup:
    if isinstance(execution_id, TaskExecution):
        return _lookup(execution_id.task_id)
    if isinstance(execution_id, int):
        task_id = _pk_to_task_id.get(execution_id)
        return _lookup(task_id) if task_id else ("pk", execution_id)
    if isinstance(execution_id, str) and execution_id.isdigit():
        return execution_lookup(int(execution_id))
    return _lookup(str(execution_id))


def start_task_tracking(
    task_id: str,
    task_name: str,
    module: str,
    user: Any = None,
    display_name: str | None = None,
) -> TaskExecution:
    """Return the execution of task_id, creating it if automatic tracking has not."""
    owner = user if isinstance(user, int) else user_id_of(user)
    run = _running.get(task_id)
    # Inside the running task the worker knows the real identity (Celery name, owner, ...).
    defaults: dict[str, Any] = run.identity() if run is not None else {}
    defaults.update(module=module[:64])
    defaults.setdefault("task_name", task_name[:255])
    if display_name or run is None:
        defaults["display_name"] = (display_name or task_name)[:255]
    if owner is not None:
        defaults["user_id"] = owner
    try:
        execution, created = TaskExecution.objects.get_or_create(task_id=task_id, defaults=defaults)
    except IntegrityError:  # created by a signal handler in another process meanwhile
        execution, created = TaskExecution.objects.get(task_id=task_id), False
    if not created:
        changes: dict[str, Any] = {"module": module[:64]}
        if display_name:
            changes["display_name"] = display_name[:255]
        if owner is not None and execution.user_id is None:
            changes["user_id"] = owner
        TaskExecution.objects.filter(pk=execution.pk).update(**changes)
        for name, value in changes.items():
            setattr(execution, name, value)
    _pk_to_task_id[execution.pk] = execution.task_id
    return execution


class TaskCancelled(Exception):
    """Raised at a progress report of a running task whose cancellation was asked for:
    the task stops there and is recorded as REVOKED."""


CANCEL_CHECK_SECONDS = 1.0  # a running task looks for a cancel request at most this often


def update_task_progress(
    execution_id: int | str | TaskExecution, progress: float, message: str = ""
) -> None:
    """Record progress (0–100). Coalesced: a bounded number of writes per second per task;
    the last value always lands. Inside the running task, raises TaskCancelled once someone
    asked to cancel it (cancelling is cooperative: progress reports are the checkpoints)."""
    lookup = execution_lookup(execution_id)
    run = _running.get(lookup[1]) if lookup[0] == "task_id" else None
    with _never_raise("progress"):
        percent = max(0, min(100, int(progress)))
        buffer.put(
            Write(
                lookup,
                TaskState.PROGRESS,
                {"progress": percent, "progress_message": str(message)[:255]},
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
    with _never_raise("cancel check"):
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
