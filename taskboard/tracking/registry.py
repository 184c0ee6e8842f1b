"""What taskboard knows about each task: its @track_task declaration, module and display
name, and the TaskTemplate row that declaration keeps in step."""

from __future__ import annotations

import fnmatch
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from celery import current_app, signals
from django.db import DatabaseError, IntegrityError

from taskboard.conf import conf
from taskboard.models import TaskTemplate, capped
from taskboard.tracking import parameters
from taskboard.tracking.guard import never_raise

logger = logging.getLogger("taskboard.tracking")

SPEC_ATTRIBUTE = "taskboard_spec"


@dataclass(frozen=True)
class TaskSpec:
    """What @track_task declares: template key, module and display name."""

    key: str
    module: str
    display_name: str
    description: str = ""
    # Initial values of the launch form (JSON); the admin may edit them afterwards.
    default_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # Numeric parameters' (low, high) bounds, kept with the template's parameters: the
    # launch form and the launch service refuse values outside them.
    bounds: Mapping[str, tuple[float | None, float | None]] = field(
        default_factory=dict, hash=False
    )
    # Safe to run twice: its message is acknowledged only once it has finished, and given
    # back to the broker when its process dies (README "Guarantees", delivery policy).
    idempotent: bool = False


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
    return capped("module", parts[0]) if len(parts) > 1 else ""


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
_unsynced_templates: set[str] = set()  # said once


def template_key(meta: TaskMeta) -> str | None:
    """The template's key, making sure its row exists (once per process)."""
    spec = meta.template
    if spec is None:
        return None
    if spec.key not in _synced_templates:
        try:
            sync_template(spec, task_name=meta.name)
        except DatabaseError:
            # The database is away: the row names its template all the same (the key is not
            # a database constraint), and the next publish (or a worker's start) syncs it.
            if spec.key not in _unsynced_templates:
                _unsynced_templates.add(spec.key)
                logger.warning("taskboard: template %s not synced (database error)", spec.key)
    return spec.key


def sync_template(spec: TaskSpec, *, task_name: str = "") -> None:
    defaults: dict[str, Any] = {"module": spec.module, "display_name": spec.display_name}
    if task_name:
        defaults["task_name"] = task_name
        task = current_app.tasks.get(task_name)
        if task is not None:
            defaults["parameters"] = parameters.describe(task.run, bounds=spec.bounds)
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
    _unsynced_templates.discard(spec.key)


def sync_templates(**_: Any) -> None:
    """Register every @track_task template (after migrate, and when a worker starts)."""
    with never_raise("template sync"):
        current_app.loader.import_default_modules()  # the task modules declare them
        named: dict[str, str] = {}
        for task in list(current_app.tasks.values()):
            spec = getattr(getattr(task, "run", None), SPEC_ATTRIBUTE, None)
            if spec is not None:
                named[spec.key] = task.name
        for spec in _registry.values():
            sync_template(spec, task_name=named.get(spec.key, ""))


F = TypeVar("F", bound=Callable[..., Any])


def track_task(
    key: str,
    module: str,
    display_name: str | None = None,
    *,
    description: str = "",
    default_kwargs: Mapping[str, Any] | None = None,
    bounds: parameters.Bounds | None = None,
    idempotent: bool = False,
) -> Callable[[F], F]:
    """Declare a task's template key, module and display name (and, for its launch form,
    a description and default kwargs; its parameters are read from the signature).

    ``bounds={"empleados": (1, 10_000)}`` bounds numeric parameters (either end None: open);
    a launch outside them is a field error. A malformed pair raises ValueError here.

    ``idempotent=True`` says the task may safely run twice: it gets Celery's
    ``acks_late`` and ``reject_on_worker_lost``, so a worker that dies gives its message
    back and another run does the work (at-least-once instead of at-most-once).

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
        bounds=parameters.check_bounds(bounds or {}),
        idempotent=idempotent,
    )

    def decorator(obj: F) -> F:
        _registry[key] = spec
        target = inspect.unwrap(obj) if inspect.isfunction(obj) else obj
        setattr(target, SPEC_ATTRIBUTE, spec)
        if not inspect.isfunction(obj):  # stacked over @shared_task: the task itself
            apply_delivery_policy(obj)
        _meta_cache.clear()
        return obj

    return decorator


def apply_delivery_policy(task: Any) -> None:
    """An idempotent task is acknowledged late and given back when its process dies."""
    spec = getattr(getattr(task, "run", None), SPEC_ATTRIBUTE, None) or getattr(
        task, SPEC_ATTRIBUTE, None
    )
    if spec is not None and spec.idempotent:
        task.acks_late = True
        task.reject_on_worker_lost = True


@signals.worker_init.connect(weak=False, dispatch_uid="taskboard.delivery_policy")
def apply_delivery_policies(**_: Any) -> None:
    """Under @shared_task the decorator sees only the function: the task is made later, by
    Celery. The worker reads acks_late when it builds its consumer, after worker_init (the
    task modules are imported by then) and before the pool forks."""
    with never_raise("delivery policy"):
        for task in list(current_app.tasks.values()):
            apply_delivery_policy(task)
