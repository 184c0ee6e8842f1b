"""Launch a task template, and retry a failed, revoked or lost execution.

Both enqueue through `_enqueue`: the new execution's row is written first (owner, template,
`retry_of`, the call kept for a later retry), then the task is published once the caller's
transaction commits, owned by whoever launched it. If the broker refuses the message the row
says so (FAILURE, "could not be sent", written through the recorder so the state rule holds)
instead of waiting forever as PENDING, and, when the publish ran at once (no enclosing
transaction), the caller gets BrokerUnavailable: the page answers 503 and says so.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from celery import current_app
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from taskboard.models import RETRYABLE_STATES, TaskExecution, TaskState, TaskTemplate, capped
from taskboard.permissions import Viewer, can_control, can_view, is_operator
from taskboard.selectors.executions import execution_retries
from taskboard.selectors.templates import template_list_launchable
from taskboard.services.limits import launch_check
from taskboard.services.workers.broker import (
    BrokerUnavailable,
    Circuit,
    broker_errors,
    failure_reason,
)
from taskboard.tracking import summaries
from taskboard.tracking.calls import Call, call_arguments, call_record
from taskboard.tracking.ownership import launched_by
from taskboard.tracking.parameters import OWNER_PARAMETER, parameters_of, value_problem
from taskboard.tracking.recorder import Write, apply

logger = logging.getLogger("taskboard.launch")


class RetryNotPossible(Exception):
    """The execution cannot be retried; `reason` says why, for the user.

    `code` is "state" (not failed, revoked or lost), "call" (its arguments were not kept) or
    "retried" (it has been retried already).
    """

    def __init__(self, reason: str, *, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


NOT_RETRYABLE_STATE = gettext_lazy("Only a failed, revoked or lost task can be retried.")
ALREADY_RETRIED = gettext_lazy(
    "This task has already been retried: follow its latest attempt (and retry that one if "
    "it failed too)."
)
CALL_NOT_KEPT = gettext_lazy(
    "This task cannot be retried: its arguments were not kept (they looked secret, were too "
    "large or were not JSON, or the task ran before taskboard kept them)."
)


# --- Templates ----------------------------------------------------------------------------


def template_can_launch(*, template: TaskTemplate, user: Viewer) -> bool:
    """Staff, or members of one of the template's groups, may launch an active template."""
    if not template.is_active or not template.task_name:
        return False
    if not user.is_authenticated:
        return False
    if is_operator(user):
        return True
    return template_list_launchable(user=user).filter(pk=template.pk).exists()


def template_check_kwargs(*, template: TaskTemplate, kwargs: dict[str, Any]) -> None:
    """Raise ValidationError (by parameter name) unless kwargs fit the template's parameters:
    no unknown name, every required one given, each value of its parameter's kind."""
    parameters = {p["name"]: p for p in parameters_of(template.parameters)}
    errors: dict[str, list[str]] = {}
    for name, value in kwargs.items():
        parameter = parameters.get(name)
        if parameter is None:
            errors[name] = [_("This task has no parameter %(name)s.") % {"name": name}]
        else:
            problem = value_problem(parameter, value)
            if problem is not None:
                errors[name] = [_problem_message(parameter, problem)]
    for name, parameter in parameters.items():
        if parameter.get("required") and name not in kwargs and name != OWNER_PARAMETER:
            errors[name] = [_("This field is required.")]
    if errors:
        raise ValidationError(errors)


def _problem_message(parameter: dict[str, Any], problem: str) -> str:
    if problem in ("min", "max"):
        low, high = parameter.get("min"), parameter.get("max")
        if low is not None and high is not None:
            return _("Enter a value from %(min)s to %(max)s.") % {"min": low, "max": high}
        if problem == "min":
            return _("Enter a value of at least %(min)s.") % {"min": low}
        return _("Enter a value of at most %(max)s.") % {"max": high}
    if problem == "finite":
        return _("Enter a finite number.")
    return _("Not a valid value for this parameter.")


def template_launch(*, template: TaskTemplate, user: Viewer, kwargs: dict[str, Any]) -> str:
    """Enqueue the template's task with kwargs, owned by user; the new task's id.

    Raises PermissionDenied if user may not launch it, ValidationError if kwargs do not
    fit its parameters (kind and bounds) and LaunchRefused (services/limits.py) past the
    user's limits: then nothing is enqueued."""
    if not template_can_launch(template=template, user=user):
        raise PermissionDenied
    template_check_kwargs(template=template, kwargs=kwargs)
    launch_check(user=user, task_name=template.task_name)
    kwargs = dict(kwargs)
    names = {p["name"] for p in parameters_of(template.parameters)}
    if OWNER_PARAMETER in names:
        kwargs[OWNER_PARAMETER] = user.pk  # the seed's convention: user_id is the launcher
    execution, publication = _enqueue(
        row={
            "task_name": capped("task_name", template.task_name),
            "display_name": capped("display_name", template.display_name),
            "module": template.module,
            "template_id": template.key,
            "args_summary": summaries.args_summary([]),
            "kwargs_summary": summaries.kwargs_summary(kwargs),
            "call": call_record((), kwargs),
        },
        args=[],
        kwargs=kwargs,
        by=user,
    )
    publication.raise_if_unsent()
    return execution.task_id


# --- Retry --------------------------------------------------------------------------------


def execution_retry_problem(
    *, execution: TaskExecution, retried: bool | None = None
) -> RetryNotPossible | None:
    """Why execution cannot be retried (whoever asks), or None when it can. `retried`: whether
    it has been retried already, if the caller knows (else one query finds out)."""
    if execution.state not in RETRYABLE_STATES:
        return RetryNotPossible(str(NOT_RETRYABLE_STATE), code="state")
    if execution.call is None:
        return RetryNotPossible(str(CALL_NOT_KEPT), code="call")
    if retried is None:
        retried = execution_retries(execution=execution).exists()
    if retried:
        # Once is enough: retrying the same failure twice (two clicks, two bulk runs) would
        # run the work twice. A retry that fails in turn is retried from its own page.
        return RetryNotPossible(str(ALREADY_RETRIED), code="retried")
    return None


def execution_can_retry(*, execution: TaskExecution, user: Viewer) -> bool:
    """Its owner or staff may retry, once, a failed, revoked or lost execution whose call
    was kept."""
    return can_control(user, execution) and execution_retry_problem(execution=execution) is None


def execution_retry(
    *, execution: TaskExecution, by: Viewer, limits_checked: bool = False
) -> TaskExecution:
    """Enqueue execution's task again with the same arguments, owned by `by`; the new
    execution (its `retry_of` is execution).

    Raises PermissionDenied unless `by` is its owner or staff; RetryNotPossible when it is
    not failed, revoked or lost ("state"), its arguments were not kept ("call"), or it was
    retried already ("retried"); LaunchRefused past `by`'s limits (services/limits.py;
    unless the caller checked them: `limits_checked`); BrokerUnavailable when it was
    published at once and the broker could not be reached (the new execution is then
    FAILURE, retryable). Within `collecting_publications()` (bulk, inside a transaction)
    the publication is added to its list instead: it is known once the transaction commits."""
    if not can_control(by, execution):
        raise PermissionDenied
    problem = execution_retry_problem(execution=execution)
    if problem is not None:
        raise problem
    if not limits_checked:
        launch_check(user=by, task_name=execution.task_name)
    call: Call = execution.call or {}
    try:
        args, kwargs = call_arguments(call)
    except ValueError:
        raise RetryNotPossible(str(CALL_NOT_KEPT), code="call") from None
    new, publication = _enqueue(
        row={
            "task_name": execution.task_name,
            "display_name": execution.display_name,
            "module": execution.module,
            "template_id": execution.template_id,
            "args_summary": execution.args_summary,
            "kwargs_summary": execution.kwargs_summary,
            "call": call,
            "retry_of": execution,
        },
        args=args,
        kwargs=kwargs,
        by=by,
    )
    publications = _collecting.get()
    if publications is None:
        publication.raise_if_unsent()
    else:
        publications.append(publication)
    return new


@dataclass(frozen=True)
class RetryPanel:
    """What an execution's detail page says about retrying it."""

    can_retry: bool = False
    # Why the viewer, who may control the task, cannot retry it.
    blocked_reason: str = ""
    # The executions that retried this one, as far as the viewer may see them.
    retried_as: list[TaskExecution] = field(default_factory=list)


def execution_retry_panel(*, execution: TaskExecution, viewer: Viewer) -> RetryPanel:
    """The retry button, or why there is none, and the executions that retried this one.
    At most one query, and only for a failed, revoked or lost execution (no other can have
    been retried); `retry_of` comes with the execution (select_related)."""
    if execution.state not in RETRYABLE_STATES:
        return RetryPanel()
    retries = list(execution_retries(execution=execution))
    visible = [r for r in retries if can_view(viewer, r)]
    if not can_control(viewer, execution):
        return RetryPanel(retried_as=visible)
    problem = execution_retry_problem(execution=execution, retried=bool(retries))
    return RetryPanel(
        can_retry=problem is None,
        blocked_reason=problem.reason if problem is not None else "",
        retried_as=visible,
    )


# --- Enqueueing ---------------------------------------------------------------------------


@dataclass
class Publication:
    """Whether a task's message went out: None until its transaction commits."""

    task_id: str
    sent: bool | None = None
    reason: str = ""  # why not (broker unreachable: refused, timeout, error)

    def raise_if_unsent(self) -> None:
        if self.sent is False and self.reason:
            raise BrokerUnavailable(self.reason, (self.task_id,))


_collecting: ContextVar[list[Publication] | None] = ContextVar(
    "taskboard_publications", default=None
)


@contextmanager
def collecting_publications() -> Iterator[list[Publication]]:
    """The publications of the retries made inside, to count those the broker did not take
    (once their transaction has committed) instead of raising at the first."""
    publications: list[Publication] = []
    token = _collecting.set(publications)
    try:
        yield publications
    finally:
        _collecting.reset(token)


def _enqueue(
    *, row: dict[str, Any], args: list[Any], kwargs: dict[str, Any], by: Viewer
) -> tuple[TaskExecution, Publication]:
    """Create the new execution's row, then publish its task once the transaction commits
    (at once outside a transaction)."""
    execution = TaskExecution.objects.create(
        task_id=str(uuid.uuid4()), state=TaskState.PENDING, user_id=by.pk, **row
    )
    task_name, task_id, owner = execution.task_name, execution.task_id, by.pk or 0
    publication = Publication(task_id)

    def publish() -> None:
        publication.sent, publication.reason = _publish(task_name, task_id, args, kwargs, owner)

    transaction.on_commit(publish)
    return execution, publication


def _publish(
    task_name: str, task_id: str, args: list[Any], kwargs: dict[str, Any], owner: int
) -> tuple[bool, str]:
    """Send the task; (sent, why not: a word when the broker was unreachable, "" when the
    failure was another). A message not sent leaves its row FAILURE, never PENDING."""
    if publishes.is_open():
        # It failed a moment ago (a bulk retry, a burst of launches): do not wait on it
        # once per task.
        _record_unsent(task_id, "BrokerUnreachable", _unsent_message(publishes.reason))
        return False, publishes.reason
    # The owner travels with the message (tracking's header) in a request or not, so
    # tasks this one launches belong to the same person.
    try:
        with launched_by(owner):
            task = current_app.tasks.get(task_name)
            if task is not None:
                task.apply_async(args=tuple(args), kwargs=kwargs, task_id=task_id)
            else:  # a task only the workers know: by name, routed like any other
                current_app.send_task(task_name, args=args, kwargs=kwargs, task_id=task_id)
    except broker_errors() as exc:
        reason = failure_reason(exc)
        logger.warning(
            "taskboard: could not send %s (%s): the broker is unreachable (%s)",
            task_name,
            task_id,
            reason,
        )
        publishes.open(reason)
        _record_unsent(task_id, "BrokerUnreachable", _unsent_message(reason))
        return False, reason
    except Exception as exc:
        logger.exception("taskboard: could not enqueue %s (%s)", task_name, task_id)
        kind, message = summaries.exception_summary(exc)
        _record_unsent(task_id, kind, f"Could not be enqueued: {message}")
        return False, ""
    return True, ""


# After a failed publish, later ones fail at once this long.
publishes = Circuit(3.0)


def _unsent_message(reason: str) -> str:
    # Stored, like every recorded error, in the language of the code; never an address.
    return (
        f"Could not be sent: the task queue (broker) is unreachable ({reason}). "
        "Nothing ran; retry it once the broker is back."
    )


def _record_unsent(task_id: str, kind: str, message: str) -> None:
    # Only from PENDING: a worker that recorded the task got the message after all.
    apply(
        Write(
            ("task_id", task_id),
            TaskState.FAILURE,
            {"finished_at": timezone.now(), "exception_type": kind, "exception_message": message},
            from_states=frozenset({TaskState.PENDING}),
        )
    )
