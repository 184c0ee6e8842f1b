"""manage.py taskboard_prune: delete finished executions older than the retention period."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from taskboard.models import TaskExecution
from taskboard.services.retention import DEFAULT_BATCH, executions_prune, retention_cutoff


class Command(BaseCommand):
    help = (
        "Delete finished task executions (and their notifications) older than "
        "TASKBOARD_RETENTION_DAYS, in small batches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=float, help="Keep this many days (default: TASKBOARD_RETENTION_DAYS)."
        )
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
        parser.add_argument(
            "--pause", type=float, default=0.0, help="Seconds to wait between batches."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count what would be deleted."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be 1 or more.")
        if options["days"] is not None and options["days"] < 0:
            raise CommandError("--days must be 0 or more.")
        cutoff = retention_cutoff(days=options["days"])
        if cutoff is None:
            self.stdout.write("Retention is off (0 days): nothing to prune.")
            return
        if options["dry_run"]:
            count = TaskExecution.objects.finished().filter(created_at__lt=cutoff).count()
            self.stdout.write(
                f"Would delete {count} executions created before {cutoff:%Y-%m-%d %H:%M}."
            )
            return
        deleted = executions_prune(
            older_than=cutoff,
            batch_size=options["batch_size"],
            pause=options["pause"],
            progress=lambda done: self.stdout.write(f"  {done} deleted…"),
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {deleted} executions created before {cutoff:%Y-%m-%d %H:%M}."
            )
        )
