"""Log records as one logfmt line each: time=… level=… logger=… msg="…" (plus exc="…")."""

from __future__ import annotations

import logging
from datetime import UTC, datetime


def _value(text: str) -> str:
    if text and not any(c in text for c in ' ="\\\n\t'):
        return text
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    )
    return '"' + escaped + '"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        fields = [
            ("time", when),
            ("level", record.levelname),
            ("logger", record.name),
            ("process", record.processName),
            ("msg", record.getMessage()),
        ]
        if record.exc_info:
            fields.append(("exc", self.formatException(record.exc_info)))
        return " ".join(f"{key}={_value(str(value))}" for key, value in fields)
