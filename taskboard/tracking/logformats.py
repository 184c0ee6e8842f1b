"""What a worker's own log says about each task: when it was received and how it ended,
never its result or its arguments, and no secret from its error.

Celery's INFO log prints every task's return value in full ("succeeded in 0.1s: {...}") and
its exception message and traceback on failure: an IBAN or a card number in a result, a
password in an error message, would reach every log collector. At worker_init (before the
pool forks, so every pool process inherits it) the success line loses the return value, and
a filter on Celery's task loggers redacts what stays (errors, tracebacks, retry reasons)
with the rules of the stored summaries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from celery import signals

from taskboard.tracking.summaries import redact_text

#: Celery's own formats (celery.app.trace), without the return value.
LOG_RECEIVED = "Task %(name)s[%(id)s] received"
LOG_SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime)ss"

#: The loggers through which Celery reports each task, and taskboard's own (a database
#: error may quote the values it refused).
TASK_LOGGERS = (
    "celery.app.trace",
    "celery.worker.strategy",
    "celery.worker.request",
    "taskboard.tracking",
)

# Values of a log record's context that are a task's data, never printed.
_HIDDEN = frozenset({"return_value", "args", "kwargs"})
HIDDEN = "…"


class Redacted:
    """An object logged with %s or %r (an exception, mostly), shown redacted."""

    def __init__(self, value: object) -> None:
        self.text = redact_text(str(value))
        self.representation = redact_text(repr(value))

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.representation


class RedactingFilter(logging.Filter):
    """Redacts a task log record: its context, its arguments and its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            _redact_record(record)
        except Exception:  # never lose a log line over redaction
            record.args, record.exc_info, record.exc_text = (
                (),
                None,
                "(not shown: redaction failed)",
            )
            record.msg = str(record.msg)
        return True


def _redact_record(record: logging.LogRecord) -> None:
    if isinstance(record.args, Mapping):
        context = {key: _redacted_value(key, value) for key, value in record.args.items()}
        record.args = context
        if isinstance(getattr(record, "data", None), Mapping):
            record.data = context
    elif isinstance(record.args, tuple):
        record.args = tuple(_redacted_arg(arg) for arg in record.args)
    if record.exc_info and not record.exc_text:
        # Formatter.format uses exc_text as it finds it: the redacted one.
        record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))


def _redacted_value(key: Any, value: Any) -> Any:
    if key in _HIDDEN:
        return HIDDEN
    return _redacted_arg(value)


def _redacted_arg(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, BaseException):
        return Redacted(value)
    return value  # numbers keep their type: the format may say %d


def quiet_task_logs() -> None:
    """Set Celery's task log formats and filters (idempotent)."""
    from celery.app import trace

    trace.LOG_RECEIVED = LOG_RECEIVED
    trace.LOG_SUCCESS = LOG_SUCCESS
    for name in TASK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


@signals.worker_init.connect(weak=False, dispatch_uid="taskboard.quiet_task_logs")
def on_worker_init(**_: Any) -> None:
    quiet_task_logs()
