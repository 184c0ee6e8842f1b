"""Reading numbers out of request text (query strings, form fields) without surprises."""

from __future__ import annotations


def whole_number(value: str, *, max_digits: int) -> int | None:
    """value as a non-negative integer, or None unless it is 1 to max_digits ASCII digits.

    str.isdigit alone also accepts other scripts' digits and superscripts ("²", which int()
    refuses); the cap keeps the number within its column (18 digits fit a bigint)."""
    if not (value.isascii() and value.isdigit()) or len(value) > max_digits:
        return None
    return int(value)
