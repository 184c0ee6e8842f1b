"""A task's parameters, read from its function's signature, as plain JSON.

@track_task templates keep them (TaskTemplate.parameters), so a launch form can be built and
its kwargs checked before anything is enqueued. Each parameter is a dict::

    {"name": "periodo_id", "kind": "int", "required": true}
    {"name": "pausa", "kind": "float", "required": false, "default": 0.05}
    {"name": "tags", "kind": "list", "required": false, "nullable": true, "default": null}

Kinds: int, float, decimal, str, bool, date, datetime, list, dict and json (any JSON value:
an annotation we cannot map, such as Any or a union of several types).
"""

from __future__ import annotations

import datetime
import decimal
import inspect
import json
import logging
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

logger = logging.getLogger("taskboard.tracking")

Parameter = dict[str, Any]

KINDS = ("int", "float", "decimal", "str", "bool", "date", "datetime", "list", "dict", "json")
# The seed's convention: a `user_id` parameter names the task's owner. A launch form does not
# ask for it: the launcher is the owner.
OWNER_PARAMETER = "user_id"

_KIND_OF_TYPE: dict[Any, str] = {
    bool: "bool",
    int: "int",
    float: "float",
    decimal.Decimal: "decimal",
    str: "str",
    datetime.datetime: "datetime",
    datetime.date: "date",
    list: "list",
    tuple: "list",
    set: "list",
    frozenset: "list",
    Sequence: "list",
    dict: "dict",
    Mapping: "dict",
}
# Annotations that could not be evaluated (names imported only for type checking) are read
# by name: "int | None", "Optional[date]", "list[str]", "decimal.Decimal".
_KIND_OF_NAME = {
    "bool": "bool",
    "int": "int",
    "float": "float",
    "Decimal": "decimal",
    "str": "str",
    "datetime": "datetime",
    "date": "date",
    "list": "list",
    "List": "list",
    "tuple": "list",
    "Tuple": "list",
    "set": "list",
    "Sequence": "list",
    "dict": "dict",
    "Dict": "dict",
    "Mapping": "dict",
}


def describe(function: Callable[..., Any]) -> list[Parameter]:
    """The parameters a caller can pass by keyword (a bound task's `self` excluded)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return []
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation that does not evaluate here: read the strings
        hints = {}
    described = []
    for parameter in signature.parameters.values():
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            continue  # *args, **kwargs and positional-only parameters take no keyword
        annotation = hints.get(parameter.name, parameter.annotation)
        has_default = parameter.default is not parameter.empty
        kind, nullable = _kind(annotation, parameter.default if has_default else None)
        entry: Parameter = {"name": parameter.name, "kind": kind, "required": not has_default}
        if nullable or (has_default and parameter.default is None):
            entry["nullable"] = True
        if has_default:
            entry["default"] = json_safe(parameter.default)
        described.append(entry)
    return described


def _kind(annotation: Any, default: Any) -> tuple[str, bool]:
    """(kind, nullable) of an annotation; without one, from the default's type."""
    if annotation is inspect.Parameter.empty:
        if default is None:
            return "str", False
        return _kind(type(default), None)
    if isinstance(annotation, str):
        return _kind_of_name(annotation)
    if annotation is None or annotation is type(None):
        return "json", True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = [m for m in typing.get_args(annotation) if m is not type(None)]
        nullable = len(members) < len(typing.get_args(annotation))
        if len(members) == 1:
            return _kind(members[0], None)[0], nullable
        return "json", nullable
    if origin is typing.Annotated:
        return _kind(typing.get_args(annotation)[0], default)
    base = origin if origin is not None else annotation
    for kind_type, kind in _KIND_OF_TYPE.items():
        if base is kind_type or (
            isinstance(base, type) and isinstance(kind_type, type) and issubclass(base, kind_type)
        ):
            return kind, False
    return "json", False


def _kind_of_name(text: str) -> tuple[str, bool]:
    text = text.strip()
    if text.startswith("Optional[") and text.endswith("]"):
        return _kind_of_name(text[len("Optional[") : -1])[0], True
    members = [m.strip() for m in text.split("|")]
    nullable = "None" in members
    members = [m for m in members if m != "None"]
    if len(members) != 1:
        return "json", nullable
    name = members[0].split("[", 1)[0].rsplit(".", 1)[-1]
    return _KIND_OF_NAME.get(name, "json"), nullable


def json_safe(value: Any) -> Any:
    """value as JSON (dates as ISO 8601, decimals as strings); None if it has no JSON form."""
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        value = list(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


def parameters_of(template_parameters: Any) -> list[Parameter]:
    """The well-formed entries of a template's stored parameters (it is a JSON column)."""
    if not isinstance(template_parameters, list):
        return []
    valid = []
    for entry in template_parameters:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry["name"]:
            kind = entry.get("kind")
            valid.append({**entry, "kind": kind if kind in KINDS else "json"})
    return valid


def check_value(parameter: Parameter, value: Any) -> bool:
    """Is value acceptable for the parameter (already converted to its Python type)?"""
    if value is None:
        return bool(parameter.get("nullable"))
    kind = parameter["kind"]
    checks: dict[str, Callable[[Any], bool]] = {
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "decimal": lambda v: isinstance(v, decimal.Decimal | int) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "datetime": lambda v: isinstance(v, datetime.datetime),
        "date": lambda v: isinstance(v, datetime.date) and not isinstance(v, datetime.datetime),
        "list": lambda v: isinstance(v, list | tuple),
        "dict": lambda v: isinstance(v, dict),
    }
    check = checks.get(kind)
    return True if check is None else check(value)
