"""TaskManager: how a cancel or terminate reaches the workers.

Celery's own broadcast (`app.control.revoke`) always works; Flower's revoke is used instead
when FLOWER_URL is set and TASKBOARD_REVOKE_VIA_FLOWER is on (e.g. when Flower is the only
process allowed to broadcast), and a Flower that fails falls back to the broadcast, so a
cancel never depends on Flower being up. Who asked and when is recorded by
`execution_cancel`, which calls this.
"""

from __future__ import annotations

import logging
from typing import Literal

from celery import Celery, current_app

from taskboard.conf import conf
from taskboard.services.flower import FlowerError, FlowerService

logger = logging.getLogger(__name__)

RevokeChannel = Literal["flower", "control"]

TERMINATE_SIGNAL = "SIGTERM"  # what Flower sends too: the task's process may clean up


class TaskManager:
    """Cancel (revoke) and terminate Celery tasks by id."""

    def __init__(self, app: Celery | None = None) -> None:
        self._app = app

    @property
    def app(self) -> Celery:
        return self._app if self._app is not None else current_app

    def flower(self) -> FlowerService | None:
        """The Flower to revoke through, or None when revoking by broadcast."""
        if not conf.REVOKE_VIA_FLOWER:
            return None
        return FlowerService.from_settings()

    def revoke(self, task_id: str, *, terminate: bool = False) -> RevokeChannel:
        """Revoke task_id: a queued task never runs; with terminate a running one is
        killed (SIGTERM). Returns the channel that carried it."""
        flower = self.flower()
        if flower is not None:
            try:
                flower.revoke(task_id, terminate=terminate)
            except FlowerError as exc:
                logger.warning(
                    "Revoking %s through Flower failed (%s: %s); using Celery's broadcast",
                    task_id,
                    exc.code,
                    exc,
                )
            else:
                return "flower"
        self.app.control.revoke(task_id, terminate=terminate, signal=TERMINATE_SIGNAL)
        return "control"

    def revoke_many(self, task_ids: list[str]) -> RevokeChannel:
        """Revoke queued tasks in one broadcast (a running one stops at its next progress
        report). Always Celery's channel: Flower revokes one task per request."""
        self.app.control.revoke(task_ids)
        return "control"
