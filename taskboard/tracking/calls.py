"""A task's call as it was published (args and kwargs), kept so the task can be retried.

The call is stored in kombu's JSON encoding, the one Celery's json serializer puts in the
message: dates, datetimes, decimals and UUIDs come back as themselves when it is published
again. It is not kept (None) when an argument's name or any key in it looks secret (the
redaction pattern: a password is never stored), when a value holds a secret the summaries
would redact (an IBAN, a card number, a bearer token, `clave=...`), when a string holds a
NUL (PostgreSQL's JSON refuses it, and with it the whole row), when it is not JSON, or when
it is longer than TASKBOARD_CALL_MAX_CHARS.

Why not keep a redacted call: a retry would run the task with "[REDACTED]" as the password
or the account. A call that cannot be kept whole is not kept: the task cannot be retried
(its page says so), and is launched anew by whoever knows the secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from kombu.utils import json as kombu_json

from taskboard.conf import conf
from taskboard.tracking.summaries import holds_secret, is_card_number, is_secret_name

Call = dict[str, Any]  # {"args": [...], "kwargs": {...}}
_SCALARS = frozenset({str, int, float, bool, type(None)})


def call_record(
    args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None, param_names: Sequence[str] = ()
) -> Call | None:
    """The call to keep for a retry, or None when it must not or cannot be kept."""
    args = args or ()
    kwargs = kwargs or {}
    if not args and not kwargs:
        return {"args": [], "kwargs": {}}  # the common case costs nothing
    limit = conf.CALL_MAX_CHARS
    if limit <= 0:
        return None
    names = [*kwargs, *param_names[: len(args)]]
    if any(not isinstance(name, str) or is_secret_name(name) for name in names):
        return None
    call: Call = {"args": list(args), "kwargs": dict(kwargs)}
    scalars_only = all(type(v) in _SCALARS for v in args) and all(
        type(v) in _SCALARS for v in kwargs.values()
    )
    try:
        # allow_nan=False: NaN is not JSON, and PostgreSQL would refuse the whole row.
        if scalars_only:  # the usual call (ids, names, flags): already JSON as it is
            if len(json.dumps(call, allow_nan=False)) > limit:
                return None
            # The names were checked above: only the values are left.
            return None if any(map(_reveals, [*args, *kwargs.values()])) else call
        text = kombu_json.dumps(call, allow_nan=False)
    except (TypeError, ValueError, OverflowError):
        return None
    if len(text) > limit:
        return None
    call = json.loads(text)
    if _reveals(call["args"]) or _reveals(call["kwargs"], top=True):
        return None
    return call


def _reveals(value: Any, top: bool = False) -> bool:
    """Does this JSON value hold a secret (a secret-looking key, a secret inside a string,
    a card number) or a NUL? (The top-level kwargs' names were checked already.)"""
    if isinstance(value, dict):
        return any(
            (not top and is_secret_name(key)) or holds_secret(key) or _reveals(item)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return any(_reveals(item) for item in value)
    if isinstance(value, str):
        return holds_secret(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return is_card_number(value)
    return False


def call_arguments(call: Call) -> tuple[list[Any], dict[str, Any]]:
    """The args and kwargs of a kept call, as the task received them (types restored).

    Raises ValueError when the stored value is not a call."""
    if not isinstance(call, dict):
        raise ValueError("not a call")
    revived = kombu_json.loads(json.dumps(call))
    args, kwargs = revived.get("args", []), revived.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ValueError("not a call")
    return args, kwargs
