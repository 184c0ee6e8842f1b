"""Alert evaluation at scale: how long does one evaluation of 20 rules take with N rows?
A benchmark, not a test (issue 15: under 200 ms in total at 1M rows).

It loads N executions into a scratch PostgreSQL database with bench/dashboard_scale.py's
loader (COPY: modules, owners, states over 90 days), creates 20 rules of every kind that
reads the database (failure rate, duration p95, k × usual p95, backlog age, no worker,
LOST) over windows from 30 min to a day, evaluates once (the transitions: alerts fire,
bells are written), then times `--rounds` evaluations and prints p50 / p95 / max of the
total, the queries of one, and each rule's own measurement time.

Queue-length rules are left out: they ask the broker (through the workers snapshot, cached
for every viewer), not the database.

Usage, from the repository root::

    .venv/bin/python bench/alerts_eval.py [--rows 1000000] [--rounds 20]
        [--database-url postgres://postgres@127.0.0.1:5432/h_alerts_bench]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.dashboard_scale import MODULES, load, recreate_database  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/h_alerts_bench"
BUDGET_MS = 200.0


def rules() -> list[dict[str, Any]]:
    """20 rules: every database kind, over every module and all, windows 30 min to 1 day."""
    minutes = 60
    specs: list[dict[str, Any]] = [
        {"kind": "failure_rate", "threshold": 20, "min_count": 10, "window": 30 * minutes},
        {"kind": "failure_rate", "threshold": 4, "min_count": 10, "window": 24 * 60 * minutes},
        {"kind": "duration_p95", "threshold": 30, "min_count": 10, "window": 60 * minutes},
        {"kind": "duration_p95", "threshold": 60, "min_count": 10, "window": 24 * 60 * minutes},
        {"kind": "long_running", "factor": 3, "min_count": 10, "window": 30 * minutes},
        {"kind": "backlog_age", "threshold": 600, "min_count": 1, "window": 30 * minutes},
        {"kind": "no_worker", "threshold": 300, "queue": "celery", "window": 30 * minutes},
        {"kind": "lost", "window": 30 * minutes},
    ]
    for module in MODULES[:4]:
        specs.append(
            {
                "kind": "failure_rate",
                "module": module,
                "threshold": 20,
                "min_count": 5,
                "window": 6 * 60 * minutes,
            }
        )
        specs.append(
            {
                "kind": "duration_p95",
                "module": module,
                "threshold": 45,
                "min_count": 5,
                "window": 6 * 60 * minutes,
            }
        )
    specs += [
        {"kind": "lost", "module": "nomina", "window": 30 * minutes},
        {"kind": "backlog_age", "module": "nomina", "threshold": 60, "window": 30 * minutes},
        {
            "kind": "failure_rate",
            "task_name": "sgm.nomina.tasks.consolidar",
            "threshold": 10,
            "min_count": 5,
            "window": 24 * 60 * minutes,
        },
        {"kind": "long_running", "module": "contabilidad", "factor": 2, "window": 30 * minutes},
    ]
    assert len(specs) == 20, len(specs)
    return specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--keep", action="store_true", help="reuse the loaded database")
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sgm.settings")
    name = urlsplit(args.database_url).path.lstrip("/")
    if not args.keep:
        print(f"loading {args.rows:,} rows into {name}", flush=True)
        recreate_database(args.database_url)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from taskboard.models import AlertRule, TaskExecution
    from taskboard.services.alerts import alerts_evaluate, measure

    if not args.keep:
        load(args.database_url, args.rows)
        admin = get_user_model().objects.get(username="admin")
        AlertRule.objects.all().delete()
        for index, spec in enumerate(rules()):
            rule = AlertRule.objects.create(name=f"bench {index:02d} {spec['kind']}", **spec)
            rule.full_clean()
            rule.users.add(admin)
    rows = TaskExecution.objects.count()
    print(f"  {rows:,} executions, {AlertRule.objects.count()} rules", flush=True)

    first = time.perf_counter()
    evaluation = alerts_evaluate()
    first_ms = (time.perf_counter() - first) * 1000
    assert evaluation is not None
    print(
        f"  first evaluation {first_ms:.1f} ms: fired {len(evaluation.fired)}, "
        f"unknown {len(evaluation.unknown)}",
        flush=True,
    )
    totals: list[float] = []
    queries = 0
    for _ in range(args.rounds):
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            alerts_evaluate()
            totals.append((time.perf_counter() - began) * 1000)
        queries = len(captured.captured_queries)
    ordered = sorted(totals)
    p95 = ordered[max(0, int(round(0.95 * len(ordered))) - 1)]
    print(
        f"  20 rules, {args.rounds} evaluations: p50 {statistics.median(totals):.1f} ms, "
        f"p95 {p95:.1f} ms, max {ordered[-1]:.1f} ms; {queries} queries each",
        flush=True,
    )
    print(f"  budget {BUDGET_MS:.0f} ms: {'met' if p95 < BUDGET_MS else 'NOT met'}", flush=True)
    now = timezone.now()
    print("  per rule (one measurement, ms):")
    for rule in AlertRule.objects.order_by("name"):
        began = time.perf_counter()
        measure(rule, now)
        print(f"    {rule.name:32} {(time.perf_counter() - began) * 1000:7.2f}")
    connection.close()


if __name__ == "__main__":
    main()
