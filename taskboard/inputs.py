"""Reading numbers out of request text (query strings, form fields) without surprises."""

from __future__ import annotations

import re


def whole_number(value: str, *, max_digits: int) -> int | None:
    """value as a non-negative integer, or None unless it is 1 to max_digits ASCII digits.

    str.isdigit alone also accepts other scripts' digits and superscripts ("²", which int()
    refuses); the cap keeps the number within its column (18 digits fit a bigint)."""
    if not (value.isascii() and value.isdigit()) or len(value) > max_digits:
        return None
    return int(value)


MAX_NUMBER_CHARS = 40  # a number typed in a form: digits, sign, point, exponent
_SIGNED_WHOLE = re.compile(r"[+-]?[0-9]+")
_DECIMAL_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")


def signed_whole_number(value: str, *, max_digits: int = 18) -> int | None:
    """value as an integer (an optional sign, then 1 to max_digits ASCII digits), else None.

    int() alone also takes other scripts' digits ("٣"), underscores ("1_000") and thousands
    of digits; 18 digits fit a bigint."""
    value = value.strip()
    if not value.isascii() or not _SIGNED_WHOLE.fullmatch(value):
        return None
    if len(value.lstrip("+-")) > max_digits:
        return None
    return int(value)


def decimal_number_text(value: str) -> str | None:
    """value (stripped) if it is a plain ASCII decimal number ("2.5", "-.5", "1e3": no
    underscores, other scripts' digits, "nan" or "inf", at most MAX_NUMBER_CHARS), else None.
    float() or Decimal() of it may still be out of range: the caller checks it is finite."""
    value = value.strip()
    if len(value) > MAX_NUMBER_CHARS or not value.isascii():
        return None
    return value if _DECIMAL_NUMBER.fullmatch(value) else None
