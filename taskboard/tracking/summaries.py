"""Safe, size-capped summaries of task arguments, results and errors for storage.

Nothing secret is stored, even truncated:
- values under keys (and parameters) whose name looks secret (TASKBOARD_REDACT_PATTERN,
  tried on the name as written and with accents and case folded: "Contraseña", "PWD");
- secrets recognised inside any text (TASKBOARD_REDACT_VALUES): IBANs that pass their
  mod-97 check, card numbers that pass Luhn's, `Bearer ...` tokens, JWTs, `clave=...` or
  `"password": "..."` pairs, and matches of TASKBOARD_REDACT_VALUE_PATTERN. Each is
  replaced by REDACTED, in arguments, results, exception messages and tracebacks alike.

Text stored as is (messages, tracebacks) has its NUL and other control characters escaped
(`\\x00`): PostgreSQL refuses a NUL in text, and the whole row with it.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from django.core.signals import setting_changed

from taskboard.conf import conf

REDACTED = "[REDACTED]"
MAX_DEPTH = 6
MAX_ITEMS = 100
ELLIPSIS = "…"


def fold(name: str) -> str:
    """name without accents, case folded: "Contraseña" -> "contrasena"."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def is_secret_name(name: object) -> bool:
    if not isinstance(name, str):
        return False
    known = _secret_names.get(name)
    if known is None:
        # The same few names come with every task: remembered until a setting changes.
        if len(_secret_names) > 4096:
            _secret_names.clear()
        pattern = _settings().names
        known = pattern.search(name) is not None or pattern.search(fold(name)) is not None
        _secret_names[name] = known
    return known


_secret_names: dict[str, bool] = {}


class _Redaction(NamedTuple):
    values: bool
    pattern: str
    names: re.Pattern[str]


_current: _Redaction | None = None


def _settings() -> _Redaction:
    """The redaction settings, read once until a setting changes (every string of every
    task asks)."""
    global _current
    if _current is None:
        _current = _Redaction(conf.REDACT_VALUES, conf.REDACT_VALUE_PATTERN, conf.redact_regex)
    return _current


def _forget(**_: Any) -> None:
    global _current
    _current = None
    _secret_names.clear()


setting_changed.connect(_forget, dispatch_uid="taskboard.tracking.summaries")


# --- Secrets inside text ----------------------------------------------------------------

# Text without a digit, a separator or one of these words holds none of the secrets below:
# the common case (names, flags, short words) costs one search.
_MAYBE_SECRET = re.compile(r"\d|[:=]|bearer|eyj", re.IGNORECASE)
_BEARER = re.compile(r"\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# name = value, name: value, "name": "value", 'name': 'value' (dict reprs, query strings,
# log lines); the value is replaced when the name looks secret.
_ASSIGNMENT = re.compile(
    r"""(?P<name>[^\W\d][\w.-]*)(?P<close>['"]?)(?P<sep>\s*[:=]\s*)"""
    r"""(?P<value>(?:(?:bearer|basic|digest|token)\s+)?"""
    r"""(?:\[REDACTED\]|'[^'\n]*'|"[^"\n]*"|[^\s,;&'"()\[\]{}<>]+))""",
    re.IGNORECASE,
)
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}")
_IBAN_BODY = re.compile(r"(?:[ -]?[A-Za-z0-9]){11,30}")
_CARD = re.compile(r"(?<![0-9.,])[2-6](?:[ -]?[0-9]){12,18}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def redact_text(text: str) -> str:
    """text with the secrets it holds replaced by REDACTED."""
    if not text:
        return text
    settings = _settings()
    if not settings.pattern and (not settings.values or _MAYBE_SECRET.search(text) is None):
        return text  # the common case: no digit, no separator, nothing to look for
    if len(text) <= _CACHED_LENGTH:
        # The same short strings come twice per task (summary, then kept call) and again
        # with the next task: remembered, with the settings that redacted them.
        return _redact_short(text, *settings)
    return _redact(text, *settings)


_CACHED_LENGTH = 200


@functools.lru_cache(maxsize=2048)
def _redact_short(text: str, values: bool, pattern: str, names: re.Pattern[str]) -> str:
    return _redact(text, values, pattern, names)


def _redact(text: str, values: bool, pattern: str, names: re.Pattern[str]) -> str:
    if values and _MAYBE_SECRET.search(text) is not None:
        text = _BEARER.sub(r"\1 " + REDACTED, text)
        text = _JWT.sub(REDACTED, text)
        text = _ASSIGNMENT.sub(_redact_assignment, text)
        text = _redact_checked(text, _IBAN_START, _iban_end)
        text = _redact_checked(text, _CARD, _card_end)
    extra = _value_regex(pattern)
    if extra is not None:
        text = extra.sub(REDACTED, text)
    return text


def clean_text(text: str) -> str:
    """text fit to be stored as is: NUL and the other control characters (but tab and
    line breaks) escaped, so that the row is always written and shown as it came."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def safe_text(text: str) -> str:
    """Redacted and cleaned: what a stored message or traceback holds."""
    return clean_text(redact_text(text))


def holds_secret(text: str) -> bool:
    """Would storing text reveal a secret (or fail, for a NUL)?"""
    return "\x00" in text or redact_text(text) != text


@functools.lru_cache(maxsize=8)
def _value_regex(pattern: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error:  # taskboard.E090 reports it
        return None


def _redact_assignment(match: re.Match[str]) -> str:
    value = match["value"]
    if value.endswith(REDACTED):
        return match[0]
    if not is_secret_name(match["name"]):
        # The value may be the next pair: "failed: clave=s3cr3t".
        inner = _ASSIGNMENT.sub(_redact_assignment, value)
        return match[0] if inner == value else match[0][: -len(value)] + inner
    quote = value[0] if value[0] in "'\"" and len(value) > 1 else ""
    return f"{match['name']}{match['close']}{match['sep']}{quote}{REDACTED}{quote}"


def _redact_checked(text: str, start: re.Pattern[str], end_of: Any) -> str:
    """Replace each candidate found by `start` whose checked end `end_of(text, match)`
    gives (None: not a secret); scanning goes on after each replaced one."""
    out: list[str] = []
    pos = 0
    for match in start.finditer(text):
        if match.start() < pos:
            continue
        end = end_of(text, match)
        if end is None:
            continue
        out.append(text[pos : match.start()])
        out.append(REDACTED)
        pos = end
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _alnum_ends(text: str, begin: int, stop: int) -> Iterator[tuple[int, str]]:
    """(end index, characters so far) after each letter or digit of text[begin:stop]
    that ends a group (followed by a separator or by the end of the text): a secret is
    never cut out of the middle of a longer word or number."""
    chars: list[str] = []
    for index in range(begin, stop):
        if text[index].isalnum():
            chars.append(text[index])
            if index + 1 >= len(text) or not text[index + 1].isalnum():
                yield index + 1, "".join(chars)


def _iban_end(text: str, match: re.Match[str]) -> int | None:
    body = _IBAN_BODY.match(text, match.end())
    if body is None:
        return None
    # The longest run that is a valid IBAN: words may follow it ("ES91 ... 1332 PAGADO").
    for end, chars in reversed(list(_alnum_ends(text, match.start(), body.end()))):
        if 15 <= len(chars) <= 34 and _iban_valid(chars):
            return end
    return None


def _iban_valid(chars: str) -> bool:
    chars = chars.upper()
    if not (chars[:2].isalpha() and chars[2:4].isdigit()) or not chars.isascii():
        return False
    rearranged = chars[4:] + chars[:4]
    digits = "".join(str(int(c, 36)) for c in rearranged)
    return int(digits) % 97 == 1


def _card_end(text: str, match: re.Match[str]) -> int | None:
    for end, digits in reversed(list(_alnum_ends(text, match.start(), match.end()))):
        if 13 <= len(digits) <= 19 and _luhn_valid(digits):
            return end
    return None


def is_card_number(value: int) -> bool:
    """A number (not text) that is a card number all the same."""
    if not 10**12 <= value < 10**19 or not _settings().values:
        return False
    digits = str(value)
    return digits[0] in "23456" and _luhn_valid(digits)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


# --- Summaries ---------------------------------------------------------------------------


def redact(value: Any, depth: int = 0) -> Any:
    """A JSON-friendly copy of value with secret-looking keys replaced."""
    if depth >= MAX_DEPTH:
        return ELLIPSIS
    if isinstance(value, Mapping):
        items = list(value.items())
        out = {
            redact_text(str(key)): REDACTED if is_secret_name(str(key)) else redact(item, depth + 1)
            for key, item in items[:MAX_ITEMS]
        }
        if len(items) > MAX_ITEMS:
            out[ELLIPSIS] = f"+{len(items) - MAX_ITEMS}"
        return out
    if isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray):
        seq = list(value)
        redacted = [redact(item, depth + 1) for item in seq[:MAX_ITEMS]]
        if len(seq) > MAX_ITEMS:
            redacted.append(f"{ELLIPSIS}+{len(seq) - MAX_ITEMS}")
        return redacted
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return REDACTED if is_card_number(value) else value
    if value is None or isinstance(value, bool | float):
        return value
    return redact_text(repr(value))


def cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS


def to_text(value: Any, limit: int | None = None) -> str:
    kind = type(value)
    if kind in _EMPTY_TEXT and not value:
        text = _EMPTY_TEXT[kind]
    else:
        text = json.dumps(redact(value), ensure_ascii=False, default=repr)
    return cap(text, conf.SUMMARY_MAX_CHARS if limit is None else limit)


# The common results and arguments of a task (None, no args, no kwargs), as to_text writes
# them: every task has two or three, and json.dumps costs more than the rest of its summary.
_EMPTY_TEXT = {type(None): "null", list: "[]", tuple: "[]", dict: "{}"}


def args_summary(args: Sequence[Any] | None, param_names: Sequence[str] = ()) -> str:
    """Positional arguments, each redacted when its parameter's name looks secret."""
    values = list(args or ())
    masked = [
        REDACTED if index < len(param_names) and is_secret_name(param_names[index]) else value
        for index, value in enumerate(values)
    ]
    return to_text(masked)


def kwargs_summary(kwargs: Mapping[str, Any] | None) -> str:
    return to_text(dict(kwargs or {}))


def exception_summary(exc: BaseException) -> tuple[str, str]:
    """(type name, message), capped."""
    kind = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        kind = f"{module}.{kind}"
    return cap(kind, 255), cap(safe_text(_message(exc)), conf.SUMMARY_MAX_CHARS)


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not lose the failure
        return f"<{type(exc).__name__}>"


def traceback_summary(text: str | None) -> str:
    """The last part of a traceback is the useful one: keep the tail when cutting."""
    if not text:
        return ""
    text = safe_text(text)
    limit = conf.TRACEBACK_MAX_CHARS
    if len(text) <= limit:
        return text
    return ELLIPSIS + text[-(limit - 1) :]
