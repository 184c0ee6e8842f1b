"""Benchmarks (not tests): run them from the repository root, e.g.
``.venv/bin/python bench/tracking_overhead.py``."""

from __future__ import annotations
