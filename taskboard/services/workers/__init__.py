"""Who is working, on what: worker sources (Flower, heartbeats, inspect), Flower's client,
and the single-flight cache in front of them."""

from __future__ import annotations

from taskboard.services.workers.single_flight import single_flight
from taskboard.services.workers.sources import (
    FLOWER_INFO_KEY,
    WORKERS_KEY,
    ActiveTask,
    FlowerInfo,
    HeartbeatSource,
    InspectSource,
    SourceFailure,
    SourceUnavailable,
    WorkerRecord,
    WorkerSource,
    WorkersSnapshot,
    fetch_flower_info,
    fetch_snapshot,
    flower_info,
    snapshot_for,
    workers_snapshot,
)

__all__ = [
    "FLOWER_INFO_KEY",
    "WORKERS_KEY",
    "ActiveTask",
    "FlowerInfo",
    "HeartbeatSource",
    "InspectSource",
    "SourceFailure",
    "SourceUnavailable",
    "WorkerRecord",
    "WorkerSource",
    "WorkersSnapshot",
    "fetch_flower_info",
    "fetch_snapshot",
    "flower_info",
    "single_flight",
    "snapshot_for",
    "workers_snapshot",
]
