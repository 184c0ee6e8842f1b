"""English dates, the same on every page, fragment and e-mail: 2026-12-03 07:05 (SGM's
English readers are in Spain as often as not: an order nobody misreads)."""

from __future__ import annotations

DATE_FORMAT = "j F Y"
DATETIME_FORMAT = "j F Y, H:i:s"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i:s"
