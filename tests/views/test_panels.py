"""The dashboard's stats and workers panels: morphing polls with stable ids, tables with
scoped headers inside their own scrolling box, times as {% when %} renders them."""

from __future__ import annotations

import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from taskboard.models import TaskState, WorkerHeartbeat
from tests.factories import client_for, make_execution

HX = {"HX-Request": "true"}


def test_stats_panel_morphs_and_scopes_its_headers(staff):
    make_execution(module="nomina", state=TaskState.SUCCESS)
    html = client_for(staff).get(reverse("taskboard:stats"), headers=HX).content.decode()
    assert html.startswith('<div id="stats-panel"') and 'hx-swap="morph:outerHTML"' in html
    assert '<div class="table-scroll" tabindex="0">' in html  # scrolls by keyboard too
    assert html.count('<th scope="col"') == 6 and html.count('<th scope="row">') == 1
    assert not re.search(r"<th(?=[\s>])(?! scope=)", html)


def test_workers_panel_morphs_and_says_when_a_worker_was_last_seen(db, staff):
    seen = timezone.now() - timedelta(minutes=3)
    WorkerHeartbeat.objects.create(
        hostname="beating@localhost", last_seen=timezone.now(), concurrency=2, queues=["celery"]
    )
    WorkerHeartbeat.objects.create(hostname="gone@localhost", last_seen=seen)
    response = client_for(staff).get(reverse("taskboard:workers"), headers=HX)
    html = response.content.decode()
    assert html.startswith('<div id="workers-panel"') and 'hx-swap="morph:outerHTML"' in html
    assert '<div class="table-scroll" tabindex="0">' in html  # scrolls by keyboard too
    assert html.count('<th scope="col"') >= 8 and html.count('<th scope="row">') >= 2
    assert not re.search(r"<th(?=[\s>])(?! scope=)", html)
    local = timezone.localtime(seen).isoformat(timespec="seconds")
    relative = rf'<time datetime="{re.escape(local)}" title="[^"]+" data-taskboard-relative>'
    assert re.search(relative + "[^<]+</time>", html)
