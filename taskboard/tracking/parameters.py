"""A task's parameters, read from its function's signature, as plain JSON.

@track_task templates keep them (TaskTemplate.parameters), so a launch form can be built and
its kwargs checked before anything is enqueued. Each parameter is a dict::

    {"name": "periodo_id", "kind": "int", "required": true}
    {"name": "pausa", "kind": "float", "required": false, "default": 0.05}
    {"name": "tags", "kind": "list", "required": false, "nullable": true, "default": null}

Kinds: int, float, decimal, str, bool, date, datetime, list, dict and json (any JSON value:
an annotation we cannot map, such as Any or a union of several types).

A numeric parameter (int, float, decimal) may carry bounds, declared with
``@track_task(..., bounds={"empleados": (1, 10_000)})``: ``"min"`` and ``"max"`` (either may
be None: open on that side). Every numeric value must be finite, and an int fit a bigint.
"""

from __future__ import annotations

import datetime
import decimal
import inspect
import json
import logging
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

logger = logging.getLogger("taskboard.tracking")

Parameter = dict[str, Any]

NUMERIC_KINDS = ("int", "float", "decimal")
MAX_INT = 2**63 - 1  # an int parameter must fit a bigint, bounds or not
Bounds = Mapping[str, tuple[float | None, float | None]]

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


def check_bounds(bounds: Bounds) -> dict[str, tuple[float | None, float | None]]:
    """The declared bounds as plain JSON numbers; ValueError (at import: a programming
    error) unless each is a (low, high) pair of finite numbers or None, low <= high."""
    checked: dict[str, tuple[float | None, float | None]] = {}
    for name, pair in bounds.items():
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ValueError(f"bounds[{name!r}] must be a (low, high) pair")
        for end in pair:
            if end is not None and not _finite_number(end):
                raise ValueError(f"bounds[{name!r}]: {end!r} is not a finite number or None")
        low, high = pair
        if low is not None and high is not None and low > high:
            raise ValueError(f"bounds[{name!r}]: low {low!r} is more than high {high!r}")
        checked[name] = (low, high)
    return checked


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def describe(function: Callable[..., Any], bounds: Bounds | None = None) -> list[Parameter]:
    """The parameters a caller can pass by keyword (a bound task's `self` excluded), a
    numeric one with its bounds (when declared)."""
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
        if bounds and parameter.name in bounds and kind in NUMERIC_KINDS:
            entry["min"], entry["max"] = bounds[parameter.name]
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
    return value_problem(parameter, value) is None


def value_problem(parameter: Parameter, value: Any) -> str | None:
    """Why value does not fit the parameter (already converted to its Python type): "kind"
    (not of its kind, or None where it is not nullable), "finite" (NaN, infinite, an int
    past a bigint), "min" or "max" (out of its bounds); None when it fits."""
    if value is None:
        return None if parameter.get("nullable") else "kind"
    if not _of_kind(parameter, value):
        return "kind"
    if parameter["kind"] in NUMERIC_KINDS and not isinstance(value, bool):
        return _number_problem(parameter, value)
    return None


def _number_problem(parameter: Parameter, value: int | float | decimal.Decimal) -> str | None:
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return "finite"
    elif isinstance(value, float):
        if not math.isfinite(value):
            return "finite"
    elif abs(value) > MAX_INT:
        return "finite"
    low, high = parameter.get("min"), parameter.get("max")
    try:
        if _finite_number(low) and value < _like(value, low):
            return "min"
        if _finite_number(high) and value > _like(value, high):
            return "max"
    except (ArithmeticError, TypeError, ValueError):
        return "kind"
    return None


def _like(value: Any, bound: Any) -> Any:
    # A Decimal compares with a float exactly enough, but not with a float's repr: convert.
    return decimal.Decimal(str(bound)) if isinstance(value, decimal.Decimal) else bound


def _of_kind(parameter: Parameter, value: Any) -> bool:
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
