"""Alert rules fire once and resolve once, with real tasks through a real worker that also
consumes the alerts' own queue (evaluation and deliveries), a local webhook server, and
the worker's e-mails read back from Django's file backend."""

from __future__ import annotations

import email
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from django.conf import settings as project_settings
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone, translation

from sgm.celery import app as celery_app
from taskboard.models import (
    Alert,
    AlertDelivery,
    AlertKind,
    AlertRule,
    AlertSeverity,
    AlertSilence,
    AlertTransition,
    TaskExecution,
    TaskNotification,
    TaskState,
    WebhookFormat,
    WorkerHeartbeat,
    database_now,
)
from taskboard.selectors.alerts import USUAL_P95_KEY
from taskboard.services.alerts import (
    ALERTS_QUEUE,
    REQUEUE_AFTER,
    Evaluation,
    WebhookRefused,
    _enqueue_deliveries,
    alert_deliveries_requeue,
    alert_delivery_send,
    alert_resolve,
    alert_text,
    alerts_evaluate,
    evaluation_lock,
)
from taskboard.services.reconcile import executions_mark_lost
from taskboard.tasks import alert_deliver, evaluate_alerts
from tests.factories import make_execution, make_user
from tests.faults.fakes import PrivateRedis, celery_on
from tests.processes import closed_port_url, database_url, start_worker, wait_until
from tests.worker_tasks import nomina_falla, nomina_siesta

TIMEOUT = 30
NOBODYS_QUEUE = "alertas-nadie"


# --- Fixtures: the worker, the webhook server, the e-mails -----------------------------------


@pytest.fixture(scope="module")
def alerts_mail_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("alerts-mail")


@pytest.fixture(scope="module")
def alerts_worker_process(
    django_db_setup: None,
    django_db_blocker: Any,
    redis_server: Any,
    alerts_mail_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    """A real worker consuming the default queue and the alerts' own, as deployed."""
    with django_db_blocker.unblock():
        db_url = database_url(connection.settings_dict)
    worker = start_worker(
        celery_app,
        tmp=tmp_path_factory.mktemp("alerts-worker"),
        broker_url=redis_server.url,
        db_url=db_url,
        queues=("celery", ALERTS_QUEUE),
        extra_env={
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(alerts_mail_dir),
        },
    )
    yield worker
    worker.stop()


@pytest.fixture
def alerts_worker(transactional_db: None, alerts_worker_process: Any, redis_client: Any) -> Any:
    # Usual durations another test remembered are not this test's.
    remembered = list(redis_client.scan_iter(match=f"*{USUAL_P95_KEY}*"))
    if remembered:
        redis_client.delete(*remembered)
    yield alerts_worker_process
    redis_client.delete(NOBODYS_QUEUE)


class Webhook:
    """What a local HTTP server received: the JSON bodies, in order."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.url = ""
        self.refuse = 0  # answer this many requests with a 503 first

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.bodies)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with hook.lock:
                refused = hook.refuse > 0
                hook.refuse -= 1
                if not refused:
                    hook.bodies.append(json.loads(body))
            self.send_response(503 if refused else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_port}/hook"
    yield hook
    server.shutdown()
    server.server_close()


def mails(folder: Path, rule_name: str) -> list[tuple[str, str, str]]:
    """(to, subject, body) of each e-mail the worker wrote about this rule."""
    found = []
    for path in sorted(folder.iterdir()):
        for raw in path.read_bytes().split(b"\n" + b"-" * 79 + b"\n"):
            if not raw.strip():
                continue
            message = email.message_from_bytes(raw)
            subject = str(make_header(decode_header(message["Subject"] or "")))
            if rule_name in subject:
                payload = message.get_payload(decode=True)
                charset = message.get_content_charset() or "utf-8"
                body = payload.decode(charset) if isinstance(payload, bytes) else str(payload)
                found.append((message["To"], subject, body))
    return found


def evaluate(now: datetime | None = None) -> Evaluation:
    """One evaluation (waiting out one the worker may be finishing: they never overlap)."""
    found: Evaluation = wait_until(lambda: alerts_evaluate(now=now), TIMEOUT)
    return found


def bells(rule_name: str) -> list[tuple[int, str]]:
    rows = TaskNotification.objects.filter(execution=None, message__contains=rule_name)
    return sorted(rows.values_list("user_id", "level"))


def transitions(rule: AlertRule) -> list[tuple[bool, bool]]:
    """(resolved, silenced) of each alert of the rule, oldest first."""
    rows = Alert.objects.filter(rule=rule).order_by("fired_at", "pk")
    return [(a.resolved_at is not None, a.silenced) for a in rows]


# --- Failure rate: every channel, every recipient, once --------------------------------------


def test_failure_rate_fires_once_per_recipient_and_channel_and_resolves_once(
    alerts_worker, webhook, alerts_mail_dir
):
    on_call = Group.objects.create(name="guardia-nomina")
    ana = make_user("ana-ops", staff=True, email="ana-ops@example.com")
    luis = make_user("luis-ops", staff=True, email="luis-ops@example.com")
    clerk = make_user("clerk-ops", email="clerk-ops@example.com")  # not staff: never notified
    for user in (ana, luis, clerk):
        user.groups.add(on_call)
    rule = AlertRule.objects.create(
        name="Nómina falla",
        kind=AlertKind.FAILURE_RATE,
        module="nomina",
        threshold=50,
        min_count=5,
        window=600,
        severity=AlertSeverity.CRITICAL,
        notify_email=True,
        notify_webhook=True,
        webhook_url=webhook.url,
    )
    rule.full_clean()
    rule.users.add(ana)  # and through the group: notified once all the same
    rule.groups.add(on_call)

    results = [nomina_falla.apply_async((n,), ignore_result=True) for n in range(5)]
    ids = [result.id for result in results]
    wait_until(
        lambda: TaskExecution.objects.filter(task_id__in=ids, state=TaskState.FAILURE).count() == 5,
        TIMEOUT,
    )
    # The periodic task, through the worker, on the alerts' queue.
    evaluate_alerts.delay()
    alert = wait_until(lambda: Alert.objects.filter(rule=rule).first(), TIMEOUT)
    assert alert.value == 100.0 and alert.resolved_at is None and not alert.silenced

    fired = wait_until(lambda: len(webhook.received()) == 1 and webhook.received(), TIMEOUT)
    assert fired[0]["status"] == "firing" and fired[0]["rule"] == "Nómina falla"
    assert fired[0]["value"] == 100.0 and fired[0]["severity"] == "critical"
    sent = wait_until(lambda: len(mails(alerts_mail_dir, rule.name)) == 2, TIMEOUT)
    assert sent
    assert sorted(to for to, _, _ in mails(alerts_mail_dir, rule.name)) == [
        "ana-ops@example.com",
        "luis-ops@example.com",
    ]
    assert bells(rule.name) == [(ana.pk, "error"), (luis.pk, "error")]
    wait_until(lambda: not AlertDelivery.objects.filter(sent_at=None).exists(), TIMEOUT)

    # Evaluated again while it holds: the same alert, nothing new sent.
    held_at = database_now() + timedelta(seconds=1)
    assert evaluate(now=held_at).fired == []
    assert AlertDelivery.objects.count() == 3 and len(bells(rule.name)) == 2

    # The failures leave the window: it no longer holds, and resolves once it has not held
    # for a whole window.
    window = timedelta(seconds=rule.window)
    assert evaluate(now=held_at + window - timedelta(seconds=1)).resolved == []
    resolved_at = held_at + window
    assert evaluate(now=resolved_at).resolved == [rule.name]
    assert evaluate(now=resolved_at + timedelta(seconds=60)).resolved == []
    assert transitions(rule) == [(True, False)]

    both = wait_until(lambda: len(webhook.received()) == 2 and webhook.received(), TIMEOUT)
    assert both[1]["status"] == "resolved" and both[1]["resolved_at"]
    wait_until(lambda: len(mails(alerts_mail_dir, rule.name)) == 4, TIMEOUT)
    assert len(bells(rule.name)) == 4
    assert sorted(level for _, level in bells(rule.name)) == [
        "error",
        "error",
        "success",
        "success",
    ]
    wait_until(lambda: not AlertDelivery.objects.filter(sent_at=None).exists(), TIMEOUT)
    assert AlertDelivery.objects.count() == 6
    assert len(webhook.received()) == 2


def test_slack_body_is_text_only(alerts_worker, webhook):
    rule = AlertRule.objects.create(
        name="Perdidas (slack)",
        kind=AlertKind.LOST,
        notify_bell=False,
        notify_webhook=True,
        webhook_url=webhook.url,
        webhook_format=WebhookFormat.SLACK,
    )
    make_lost_task()
    assert evaluate().fired == [rule.name]
    [body] = wait_until(webhook.received, TIMEOUT)
    assert list(body) == ["text"] and "Perdidas (slack)" in body["text"]
    # In the site's language (Spanish by default): "1 tarea perdida".
    assert "1 tarea perdida" in body["text"] and "/tasks/alerts/" in body["text"]


def test_a_refused_webhook_is_retried_and_sent_once(transactional_db, webhook):
    """What the Celery task does on each attempt (it retries with backoff on the error)."""
    rule = AlertRule.objects.create(
        name="Perdidas (reintento)",
        kind=AlertKind.LOST,
        notify_bell=False,
        notify_webhook=True,
        webhook_url=webhook.url,
    )
    alert = Alert.objects.create(rule=rule, value=2)
    delivery = AlertDelivery.objects.create(
        alert=alert, transition="fired", channel="webhook", recipient=webhook.url
    )
    webhook.refuse = 1
    with pytest.raises(OSError):  # urllib's HTTPError: the task's autoretry_for
        alert_delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.sent_at is None and delivery.attempts == 1 and "503" in delivery.last_error
    assert alert_delivery_send(delivery_id=delivery.pk) is True
    assert alert_delivery_send(delivery_id=delivery.pk) is False  # sent: never again
    assert [body["status"] for body in webhook.received()] == ["firing"]
    delivery.refresh_from_db()
    assert delivery.sent_at is not None and delivery.attempts == 2 and delivery.last_error == ""
    assert getattr(alert_deliver, "autoretry_for", ()) == (OSError, WebhookRefused)
    assert getattr(alert_deliver, "retry_backoff", False)


# --- Deliveries the broker refused ----------------------------------------------------------


def test_a_delivery_the_broker_refused_is_sent_by_a_later_evaluation_once(alerts_worker, webhook):
    """The broker is down when the alert fires: its delivery is recorded, not handed over.
    Once the broker is back, the evaluation hands it over (through the worker: sent once),
    and never again."""
    rule = AlertRule.objects.create(
        name="Perdidas (sin broker)",
        kind=AlertKind.LOST,
        window=3600,
        notify_bell=False,
        notify_webhook=True,
        webhook_url=webhook.url,
    )
    make_lost_task()
    now = database_now()
    with celery_on(closed_port_url().replace("http://", "redis://") + "/0"):
        assert evaluate(now=now).fired == [rule.name]
    delivery = AlertDelivery.objects.get()
    assert (delivery.enqueued_at, delivery.sent_at, delivery.attempts) == (None, None, 0)

    # Just written: its transition's own hand-over may still be on its way, so not yet.
    assert evaluate(now=now + timedelta(seconds=1)).requeued == 0
    later = now + REQUEUE_AFTER + timedelta(seconds=1)
    assert evaluate(now=later).requeued == 1
    [body] = wait_until(webhook.received, TIMEOUT)
    assert body["status"] == "firing" and body["rule"] == rule.name
    sent = wait_until(lambda: AlertDelivery.objects.filter(sent_at__isnull=False).first(), TIMEOUT)
    assert sent.attempts == 1 and sent.enqueued_at is not None

    assert evaluate(now=later + timedelta(seconds=60)).requeued == 0
    assert AlertDelivery.objects.get().attempts == 1 and len(webhook.received()) == 1


@pytest.fixture
def quiet_broker(tmp_path) -> Iterator[redis.Redis]:
    """A broker of the test's own that no worker consumes: what was handed over stays there
    to be counted."""
    server = PrivateRedis(tmp_path)
    try:
        with celery_on(server.url):
            yield redis.Redis.from_url(server.url)
    finally:
        server.stop()


def handed_over(broker: redis.Redis) -> list[int]:
    """The delivery ids of the messages waiting in the alerts' queue, sorted."""
    waiting = cast("list[bytes]", broker.lrange(ALERTS_QUEUE, 0, -1))
    messages = [json.loads(raw) for raw in waiting]
    assert {m["headers"]["task"] for m in messages} <= {"taskboard.alert_deliver"}
    return sorted(int(m["headers"]["argsrepr"].strip("(),")) for m in messages)


def test_stranded_deliveries_are_handed_over_once_in_bounded_batches(
    transactional_db, quiet_broker
):
    rule = AlertRule.objects.create(name="Perdidas", kind=AlertKind.LOST, notify_webhook=True)
    alert = Alert.objects.create(rule=rule, value=1)
    long_ago = timezone.now() - timedelta(minutes=10)

    def delivery(n: int, **fields: Any) -> AlertDelivery:
        return AlertDelivery.objects.create(
            alert=alert,
            transition="fired",
            channel="webhook",
            recipient=f"http://127.0.0.1:9/{n}",
            **{"created_at": long_ago, **fields},
        )

    stranded = [delivery(n) for n in range(5)]
    delivery(10, sent_at=long_ago, enqueued_at=long_ago)  # sent
    delivery(11, enqueued_at=long_ago, attempts=2, last_error="HTTP 503")  # retrying
    delivery(12, created_at=timezone.now())  # just written: its transition hands it over
    now = database_now()
    assert [alert_deliveries_requeue(now=now, limit=2) for _ in range(4)] == [2, 2, 1, 0]
    assert handed_over(quiet_broker) == [d.pk for d in stranded]
    assert not AlertDelivery.objects.filter(pk__in=[d.pk for d in stranded], enqueued_at=None)


def test_a_delivery_is_handed_over_once_whoever_reaches_for_it(transactional_db, quiet_broker):
    """The transition's hand-over after its commit and an evaluation's requeue both claim
    it by a conditional UPDATE first: the second finds it claimed and leaves it."""
    rule = AlertRule.objects.create(name="Perdidas", kind=AlertKind.LOST, notify_webhook=True)
    alert = Alert.objects.create(rule=rule, value=1)
    one = AlertDelivery.objects.create(
        alert=alert, transition="fired", channel="webhook", recipient="http://127.0.0.1:9/"
    )
    assert _enqueue_deliveries([one.pk, one.pk]) == 1
    assert _enqueue_deliveries([one.pk]) == 0
    far_ahead = database_now() + timedelta(hours=1)
    assert alert_deliveries_requeue(now=far_ahead) == 0
    assert handed_over(quiet_broker) == [one.pk]


def test_a_refused_hand_over_is_released_for_the_next_evaluation(transactional_db):
    rule = AlertRule.objects.create(name="Perdidas", kind=AlertKind.LOST, notify_webhook=True)
    alert = Alert.objects.create(rule=rule, value=1)
    pending = [
        AlertDelivery.objects.create(
            alert=alert, transition="fired", channel="webhook", recipient=f"http://127.0.0.1:9/{n}"
        )
        for n in range(3)
    ]
    with celery_on(closed_port_url().replace("http://", "redis://") + "/0"):
        # One refusal is enough: the others are not tried (each would wait as long).
        assert _enqueue_deliveries([d.pk for d in pending]) == 0
    assert AlertDelivery.objects.filter(enqueued_at=None).count() == 3


# --- Each kind fires once and resolves once ------------------------------------------------


def fire_and_resolve(rule: AlertRule, *, at: datetime, quiet_at: datetime) -> Alert:
    """Evaluate at `at` (it fires), again (it holds: nothing new), then at `quiet_at` (a
    window after it last held: it resolves), and once more (nothing)."""
    assert evaluate(now=at).fired == [rule.name]
    assert evaluate(now=at + timedelta(seconds=1)).fired == []
    assert evaluate(now=quiet_at).resolved == [rule.name]
    assert evaluate(now=quiet_at + timedelta(seconds=1)).resolved == []
    assert transitions(rule) == [(True, False)]
    return Alert.objects.get(rule=rule)


def staff_rule(**fields: Any) -> AlertRule:
    rule = AlertRule(**fields)
    rule.full_clean()
    rule.save()
    rule.users.add(make_user(f"ops-{rule.pk}", staff=True))
    return rule


def test_duration_p95_above_a_limit(alerts_worker):
    results = [nomina_siesta.apply_async((0.4,), ignore_result=True) for _ in range(3)]
    ids = [result.id for result in results]
    wait_until(
        lambda: TaskExecution.objects.filter(task_id__in=ids, state=TaskState.SUCCESS).count() == 3,
        TIMEOUT,
    )
    rule = staff_rule(
        name="Nómina lenta",
        kind=AlertKind.DURATION_P95,
        module="nomina",
        threshold=0.3,
        min_count=3,
        window=300,
    )
    now = database_now()
    alert = fire_and_resolve(rule, at=now, quiet_at=now + timedelta(seconds=302))
    assert alert.value is not None and alert.value >= 0.4
    assert len(bells(rule.name)) == 2  # fired, resolved: one recipient


def test_a_task_running_longer_than_k_times_its_usual_p95(alerts_worker):
    quick = [nomina_siesta.apply_async((0.2,), ignore_result=True) for _ in range(2)]
    wait_until(
        lambda: (
            TaskExecution.objects.filter(
                task_id__in=[r.id for r in quick], state=TaskState.SUCCESS
            ).count()
            == 2
        ),
        TIMEOUT,
    )
    rule = staff_rule(
        name="Nómina colgada",
        kind=AlertKind.LONG_RUNNING,
        task_name=nomina_siesta.name,
        factor=3,
        min_count=2,
        window=60,
    )
    long = nomina_siesta.apply_async((4,), ignore_result=True)
    running = wait_until(
        lambda: TaskExecution.objects.filter(
            task_id=long.id, state=TaskState.STARTED, started_at__isnull=False
        ).first(),
        TIMEOUT,
    )
    # Not long enough yet (under 3 × its usual ~0.2 s), then well past it.
    assert evaluate(now=running.started_at + timedelta(seconds=0.3)).fired == []
    seen = running.started_at + timedelta(seconds=3)
    assert evaluate(now=seen).fired == [rule.name]
    assert evaluate(now=seen + timedelta(seconds=0.5)).fired == []
    wait_until(
        lambda: TaskExecution.objects.filter(task_id=long.id, state=TaskState.SUCCESS).exists(),
        TIMEOUT,
    )
    quiet = database_now() + timedelta(seconds=61)
    assert evaluate(now=quiet).resolved == [rule.name]
    assert transitions(rule) == [(True, False)]
    assert (Alert.objects.get(rule=rule).value or 0) >= 3


def test_backlog_age_and_queue_length(alerts_worker, redis_client):
    """Two payroll tasks published to a queue nobody consumes: queued, and waiting there."""
    results = [
        nomina_siesta.apply_async((0,), queue=NOBODYS_QUEUE, ignore_result=True) for _ in range(2)
    ]
    ids = [result.id for result in results]
    wait_until(lambda: TaskExecution.objects.filter(task_id__in=ids).count() == 2, TIMEOUT)
    assert redis_client.llen(NOBODYS_QUEUE) == 2
    old = staff_rule(
        name="Nómina en cola",
        kind=AlertKind.BACKLOG_AGE,
        module="nomina",
        threshold=120,
        min_count=2,
        window=60,
    )
    long_queue = staff_rule(
        name="Cola larga", kind=AlertKind.QUEUE_LENGTH, queue=NOBODYS_QUEUE, threshold=1, window=60
    )
    now = database_now()
    assert set(evaluate(now=now).fired) == {long_queue.name}  # not 120 s old yet
    later = now + timedelta(seconds=125)
    assert evaluate(now=later).fired == [old.name]
    assert (Alert.objects.get(rule=old).value or 0) >= 125
    assert Alert.objects.get(rule=long_queue).value == 2
    # Someone cancels them and the queue is emptied.
    TaskExecution.objects.filter(task_id__in=ids).update(state=TaskState.REVOKED)
    redis_client.delete(NOBODYS_QUEUE)
    quiet = later + timedelta(seconds=61)
    assert set(evaluate(now=quiet).resolved) == {old.name, long_queue.name}
    assert evaluate(now=quiet + timedelta(seconds=1)).resolved == []
    assert transitions(old) == transitions(long_queue) == [(True, False)]


def test_no_worker_consuming_a_queue(alerts_worker, spawn_worker, settings):
    # Evaluated ahead of the clock below: a worker beating now is still online then.
    settings.TASKBOARD_WORKER_OFFLINE_AFTER = 600
    served = staff_rule(
        name="Alertas sin worker", kind=AlertKind.NO_WORKER, queue=ALERTS_QUEUE, threshold=60
    )
    empty = "alertas-vacia"
    unserved = staff_rule(
        name="Cola sin worker", kind=AlertKind.NO_WORKER, queue=empty, threshold=60, window=30
    )
    wait_until(  # the alerts worker's heartbeat names its queues
        lambda: WorkerHeartbeat.objects.filter(hostname=alerts_worker.name).exists(), TIMEOUT
    )
    now = database_now()
    assert evaluate(now=now).fired == []  # nobody for less than 60 s
    assert evaluate(now=now + timedelta(seconds=61)).fired == [unserved.name]
    # A worker for it starts: it resolves once it has been served for a whole window.
    started = spawn_worker(queues=(empty,))
    wait_until(
        lambda: (
            WorkerHeartbeat.objects.filter(hostname=started.name, queues__isnull=False)
            .exclude(queues=[])
            .exists()
        ),
        TIMEOUT,
    )
    assert evaluate(now=now + timedelta(seconds=62)).resolved == []  # held 1 s ago
    assert evaluate(now=now + timedelta(seconds=92)).resolved == [unserved.name]
    assert transitions(unserved) == [(True, False)] and transitions(served) == []


def make_lost_task(at: datetime | None = None) -> TaskExecution:
    """A task whose worker stopped mid-run, marked LOST by the reconciliation (at `at`, for
    a test whose evaluations run ahead of the clock)."""
    now = timezone.now()
    hostname = f"gone-{TaskExecution.objects.count()}@host"
    WorkerHeartbeat.objects.create(hostname=hostname, last_seen=now, stopped_at=now)
    execution = make_execution(worker=hostname, state=TaskState.STARTED, started_at=now)
    assert executions_mark_lost() == 1
    execution.refresh_from_db()
    assert execution.state == TaskState.LOST and execution.lost_at is not None
    if at is not None:
        TaskExecution.objects.filter(pk=execution.pk).update(lost_at=at)
    return execution


def test_any_task_lost_since_the_last_evaluation(alerts_worker):
    rule = staff_rule(name="Perdidas", kind=AlertKind.LOST, window=60)
    assert evaluate().fired == []
    make_lost_task()
    now = database_now()
    assert evaluate(now=now).fired == [rule.name]
    # The same loss is not counted again: not held, resolved a window later.
    assert evaluate(now=now + timedelta(seconds=1)).fired == []
    assert evaluate(now=now + timedelta(seconds=61)).resolved == [rule.name]
    assert transitions(rule) == [(True, False)]
    assert Alert.objects.get(rule=rule).value == 1


# --- Silences ------------------------------------------------------------------------------


def test_a_silenced_rule_records_but_notifies_nobody(alerts_worker, webhook):
    rule = staff_rule(
        name="Perdidas calladas",
        kind=AlertKind.LOST,
        window=60,
        notify_webhook=True,
        webhook_url=webhook.url,
    )
    start = database_now()

    def at(seconds: float) -> datetime:
        return start + timedelta(seconds=seconds)

    AlertSilence.objects.create(rule=rule, ends_at=at(3600), reason="mantenimiento")
    make_lost_task(at(1))
    assert evaluate(now=at(2)).fired == [rule.name]
    assert evaluate(now=at(63)).resolved == [rule.name]
    assert transitions(rule) == [(True, True)]
    assert bells(rule.name) == [] and not AlertDelivery.objects.exists()
    # A silence of every rule silences this one too.
    AlertSilence.objects.all().delete()
    every_rule = AlertSilence.objects.create(ends_at=at(3600))
    make_lost_task(at(70))
    assert evaluate(now=at(71)).fired == [rule.name]
    # Once it ends, the alert that fired silenced resolves silently (nobody heard it fire)...
    AlertSilence.objects.filter(pk=every_rule.pk).update(ends_at=at(72))
    assert evaluate(now=at(140)).resolved == [rule.name]
    assert bells(rule.name) == [] and not AlertDelivery.objects.exists()
    # ... and the next firing is heard.
    make_lost_task(at(150))
    assert evaluate(now=at(151)).fired == [rule.name]
    assert transitions(rule) == [(True, True), (True, True), (False, False)]
    assert len(bells(rule.name)) == 1
    [body] = wait_until(webhook.received, TIMEOUT)
    assert body["status"] == "firing"


# --- A rule disabled or deleted while its alert fires ---------------------------------------


def test_disabling_a_rule_resolves_its_open_alert_once(alerts_worker, webhook):
    """Nothing measures a disabled rule, so nothing else would resolve its alert: the next
    evaluation does, long before a window has passed, and says so once on every channel."""
    rule = staff_rule(
        name="Perdidas (apagada)",
        kind=AlertKind.LOST,
        window=3600,
        notify_webhook=True,
        webhook_url=webhook.url,
    )
    make_lost_task()
    now = database_now()
    assert evaluate(now=now).fired == [rule.name]
    wait_until(lambda: len(webhook.received()) == 1, TIMEOUT)

    rule = AlertRule.objects.get(pk=rule.pk)  # what the admin's form loads and saves
    rule.enabled = False
    rule.save()
    assert evaluate(now=now + timedelta(seconds=1)).resolved == [rule.name]
    assert evaluate(now=now + timedelta(seconds=2)).resolved == []
    assert transitions(rule) == [(True, False)]
    assert Alert.objects.get(rule=rule).resolved_at == now + timedelta(seconds=1)

    both = wait_until(lambda: len(webhook.received()) == 2 and webhook.received(), TIMEOUT)
    assert [body["status"] for body in both] == ["firing", "resolved"]
    assert both[0]["rule_enabled"] is True and both[1]["rule_enabled"] is False
    with translation.override(project_settings.LANGUAGE_CODE):  # the worker's language
        said = alert_text(rule=rule, transition=AlertTransition.RESOLVED, value=None)
    assert both[1]["text"] == said and rule.name in said
    assert sorted(level for _, level in bells(rule.name)) == ["success", "warning"]
    resolved_bell = TaskNotification.objects.get(execution=None, level="success")
    assert resolved_bell.message == alert_text(
        rule=rule, transition=AlertTransition.RESOLVED, value=None
    )
    wait_until(lambda: not AlertDelivery.objects.filter(sent_at=None).exists(), TIMEOUT)
    assert AlertDelivery.objects.count() == 2

    # Enabled again while the condition holds: it fires anew, as any rule would.
    rule = AlertRule.objects.get(pk=rule.pk)
    rule.enabled = True
    rule.save()
    make_lost_task(now + timedelta(seconds=3))
    assert evaluate(now=now + timedelta(seconds=4)).fired == [rule.name]
    assert transitions(rule) == [(True, False), (False, False)]


def test_a_disabled_rules_alert_says_why_it_resolved(db):
    rule = AlertRule.objects.create(name="Perdidas", kind=AlertKind.LOST, enabled=False)
    with translation.override("en"):
        said = alert_text(rule=rule, transition=AlertTransition.RESOLVED, value=None)
        rule.enabled = True
        plain = alert_text(rule=rule, transition=AlertTransition.RESOLVED, value=None)
    assert said == "Alert «Perdidas» resolved: its rule was disabled"
    assert plain == "Alert «Perdidas» resolved"


def test_a_disabled_rule_that_fired_silenced_resolves_silently(db):
    rule = AlertRule.objects.create(name="Perdidas calladas", kind=AlertKind.LOST)
    rule.users.add(make_user("ops-callada", staff=True))
    alert = Alert.objects.create(rule=rule, value=1, silenced=True)
    AlertRule.objects.filter(pk=rule.pk).update(enabled=False)
    # The only open alert, of the only rule, which is disabled: still evaluated.
    assert evaluate().resolved == [rule.name]
    alert.refresh_from_db()
    assert alert.resolved_at is not None
    assert bells(rule.name) == [] and not AlertDelivery.objects.exists()


def test_re_enabled_meanwhile_the_alert_stays_open(db):
    """The evaluation read the rule disabled; an admin enables it again before it resolves
    the alert: the UPDATE's own condition keeps the alert open (the rule is judged anew)."""
    rule = AlertRule.objects.create(name="Perdidas", kind=AlertKind.LOST)
    alert = Alert.objects.create(rule=rule, value=1)
    now = database_now()
    assert not alert_resolve(alert=alert, rule=rule, now=now, silenced=False, only_if_disabled=True)
    assert Alert.objects.get(pk=alert.pk).resolved_at is None


def test_deleting_a_rule_leaves_no_alert_firing(db):
    """Its alerts (and their deliveries) go with it: nothing is left firing, nothing is sent."""
    rule = AlertRule.objects.create(name="Perdidas", kind=AlertKind.LOST)
    alert = Alert.objects.create(rule=rule, value=1)
    AlertDelivery.objects.create(
        alert=alert, transition="fired", channel="webhook", recipient="http://127.0.0.1:9/"
    )
    rule.delete()
    assert not Alert.objects.exists() and not AlertDelivery.objects.exists()
    assert evaluate().resolved == []


# --- The periodic task and its lock ---------------------------------------------------------


def test_evaluations_never_overlap(transactional_db):
    """While one process evaluates (here a thread with its own connection), another skips."""
    AlertRule.objects.create(name="Perdidas", kind=AlertKind.LOST)
    holding, release = threading.Event(), threading.Event()
    taken: list[bool] = []

    def evaluate_slowly() -> None:
        try:
            with evaluation_lock() as got:
                taken.append(got)
                holding.set()
                release.wait(TIMEOUT)
        finally:
            connection.close()

    thread = threading.Thread(target=evaluate_slowly)
    thread.start()
    assert holding.wait(TIMEOUT) and taken == [True]
    try:
        assert alerts_evaluate() is None  # the other one holds the lock
    finally:
        release.set()
        thread.join(TIMEOUT)
    assert alerts_evaluate() is not None


def test_the_beat_evaluates_on_the_alerts_queue():
    schedule: dict[str, Any] = project_settings.CELERY_BEAT_SCHEDULE["taskboard-evaluate-alerts"]
    assert schedule["task"] == "taskboard.evaluate_alerts"
    assert schedule["options"]["queue"] == ALERTS_QUEUE
    assert 0 < schedule["options"]["expires"] <= schedule["schedule"]
    routes = project_settings.CELERY_TASK_ROUTES
    assert routes["taskboard.evaluate_alerts"] == {"queue": ALERTS_QUEUE}
    assert routes["taskboard.alert_deliver"] == {"queue": ALERTS_QUEUE}
