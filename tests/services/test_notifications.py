"""Notifications: created once per finished execution for its owner, as preferences ask;
the header's bell, the page, marking read, preferences, and failure e-mails."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from sgm.contabilidad.tasks import cerrar_periodo
from sgm.nomina.tasks import exportar_nominas
from taskboard.models import (
    NotificationPreference,
    TaskExecution,
    TaskNotification,
    TaskState,
    WorkerHeartbeat,
)
from taskboard.services.cancel import execution_cancel
from taskboard.services.notifications import notifications_create_for, notifications_email
from taskboard.services.reconcile import executions_mark_lost
from taskboard.signals import executions_finished, executions_finished_send
from taskboard.templatetags.taskboard_text import notification_text
from taskboard.tracking.ownership import launched_by
from taskboard.tracking.recorder import Write, apply, buffer
from tests import worker_tasks
from tests.factories import client_for, make_execution
from tests.processes import wait_until

HX = {"HX-Request": "true"}
TIMEOUT = 30


def notifications_of(user: Any) -> list[TaskNotification]:
    return list(TaskNotification.objects.filter(user=user).order_by("id"))


# Past TASKBOARD_NOTIFY_SUCCESS_AFTER_SECONDS (60): a success that notifies by default.
LONG = 90.0


def finish(
    execution: TaskExecution, state: str = TaskState.SUCCESS, duration: float = LONG
) -> bool:
    """A final tracking write, as a worker makes it."""
    fields = {"finished_at": timezone.now(), "duration": duration}
    return apply(Write(("task_id", execution.task_id), state, fields))


def make_notifications(user: Any, count: int, **fields: Any) -> list[TaskNotification]:
    executions = TaskExecution.objects.bulk_create(
        TaskExecution(
            task_id=str(uuid.uuid4()),
            task_name="sgm.nomina.tasks.consolidar_nomina",
            display_name=f"Tarea {index}",
            module="nomina",
            user=user,
            state=TaskState.SUCCESS,
        )
        for index in range(count)
    )
    now = timezone.now()
    return TaskNotification.objects.bulk_create(
        TaskNotification(
            user=user,
            execution=execution,
            level=TaskNotification.Level.SUCCESS,
            state=TaskState.SUCCESS,
            message=execution.display_name,
            created_at=now - timedelta(minutes=index),
            **fields,
        )
        for index, execution in enumerate(executions)
    )


def task_id_of(notification: TaskNotification) -> str:
    assert notification.execution is not None
    return notification.execution.task_id


# --- Creation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "level"),
    [
        (TaskState.SUCCESS, "success"),
        (TaskState.FAILURE, "error"),
        (TaskState.REVOKED, "warning"),
        (TaskState.LOST, "error"),
    ],
)
def test_final_write_notifies_the_owner_once(ana, state, level):
    execution = make_execution(user=ana, state=TaskState.PROGRESS)
    assert finish(execution, state)
    assert not finish(execution, state)  # the same final write again changes nothing
    executions_finished_send([("task_id", execution.task_id)])  # a duplicate signal
    executions_finished_send([("pk", execution.pk)])
    [notification] = notifications_of(ana)
    assert (notification.execution_id, notification.level) == (execution.pk, level)
    assert notification.state == state
    assert notification.message == "Consolidar nómina"  # the label; the text is rendered later
    assert notification.read_at is None and notification.emailed_at is None


def test_nothing_for_a_task_without_owner_and_one_query_per_batch(db, django_assert_num_queries):
    executions = [make_execution(state=TaskState.SUCCESS) for _ in range(50)]
    lookups: list[tuple[str, Any]] = [("task_id", e.task_id) for e in executions[:25]]
    lookups += [("pk", e.pk) for e in executions[25:]]
    with django_assert_num_queries(1):
        assert notifications_create_for(lookups=lookups) == 0
    assert not TaskNotification.objects.exists()


def test_a_large_batch_is_read_whole(ana):
    owned = make_execution(user=ana, state=TaskState.FAILURE)
    lookups: list[tuple[str, Any]] = [("task_id", str(uuid.uuid4())) for _ in range(1200)]
    lookups[900] = ("task_id", owned.task_id)
    lookups.append(("pk", owned.pk))  # the same execution twice: one notification
    assert notifications_create_for(lookups=[]) == 0
    notifications_create_for(lookups=lookups)
    [notification] = notifications_of(ana)
    assert notification.execution_id == owned.pk


def test_preferences_are_respected(ana, other):
    NotificationPreference.objects.create(
        user=ana, on_success=False, on_failure=True, on_revoked=False, on_lost=True
    )
    done = {state: make_execution(user=ana, state=TaskState.STARTED) for state in TaskState}
    theirs = make_execution(user=other, state=TaskState.STARTED)  # no row: the defaults
    for state in (TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED, TaskState.LOST):
        finish(done[state], state)
    finish(theirs, TaskState.SUCCESS)
    assert [n.state for n in notifications_of(ana)] == [TaskState.FAILURE, TaskState.LOST]
    assert [n.state for n in notifications_of(other)] == [TaskState.SUCCESS]


def test_by_default_a_short_success_is_quiet_and_the_rest_notify(ana, settings):
    short = make_execution(user=ana, state=TaskState.STARTED)
    unstarted = make_execution(user=ana, state=TaskState.PENDING)
    long = make_execution(user=ana, state=TaskState.STARTED)
    quick_failure = make_execution(user=ana, state=TaskState.STARTED)
    quick_cancel = make_execution(user=ana, state=TaskState.PENDING)
    finish(short, TaskState.SUCCESS, duration=59.9)
    apply(Write(("task_id", unstarted.task_id), TaskState.SUCCESS, {}))  # no duration known
    finish(long, TaskState.SUCCESS, duration=60.0)
    finish(quick_failure, TaskState.FAILURE, duration=0.1)
    finish(quick_cancel, TaskState.REVOKED, duration=0.0)
    notified = [n.execution_id for n in notifications_of(ana)]
    assert notified == [long.pk, quick_failure.pk, quick_cancel.pk]
    settings.TASKBOARD_NOTIFY_SUCCESS_AFTER_SECONDS = 0  # every success
    every = make_execution(user=ana, state=TaskState.STARTED)
    finish(every, TaskState.SUCCESS, duration=0.01)
    never_started = make_execution(user=ana, state=TaskState.PENDING)
    apply(Write(("task_id", never_started.task_id), TaskState.SUCCESS, {}))
    assert [n.execution_id for n in notifications_of(ana)][-2:] == [every.pk, never_started.pk]


def test_saved_preferences_win_over_the_success_threshold(ana, other):
    NotificationPreference.objects.create(user=ana, on_success=True)
    NotificationPreference.objects.create(user=other, on_success=False)
    mine = make_execution(user=ana, state=TaskState.STARTED)
    theirs = make_execution(user=other, state=TaskState.STARTED)
    finish(mine, TaskState.SUCCESS, duration=0.5)  # asked for every success
    finish(theirs, TaskState.SUCCESS, duration=3600)  # asked for none
    assert [n.execution_id for n in notifications_of(ana)] == [mine.pk]
    assert notifications_of(other) == []


def test_a_batch_announces_its_final_writes_once(ana):
    heard: list[list[tuple[str, Any]]] = []

    def listener(sender: Any, lookups: list[tuple[str, Any]], **kwargs: Any) -> None:
        heard.append(lookups)

    executions = [make_execution(user=ana, state=TaskState.STARTED) for _ in range(4)]
    executions_finished.connect(listener, dispatch_uid="test.listener")
    try:
        # Not due for a minute: the flushing thread leaves them to this flush.
        for execution in executions[:3]:
            final = Write(("task_id", execution.task_id), TaskState.SUCCESS, {"duration": LONG})
            buffer.put(final, delay=60)
        progress = Write(("task_id", executions[3].task_id), TaskState.PROGRESS, {"progress": 5})
        buffer.put(progress, delay=60)
        buffer.flush()
    finally:
        executions_finished.disconnect(dispatch_uid="test.listener")
    assert heard == [[("task_id", e.task_id) for e in executions[:3]]]  # progress is not final
    assert len(notifications_of(ana)) == 3


def test_a_failing_notification_never_breaks_tracking(ana, monkeypatch, caplog):
    def broken(**kwargs: Any) -> int:
        raise RuntimeError("database on fire")

    monkeypatch.setattr("taskboard.services.notifications.notifications_create_for", broken)
    execution = make_execution(user=ana, state=TaskState.STARTED)
    assert finish(execution, TaskState.FAILURE)  # no exception reaches the writer
    assert TaskExecution.objects.get(pk=execution.pk).state == TaskState.FAILURE
    assert "could not create notifications" in caplog.text
    assert not TaskNotification.objects.exists()


def test_another_receivers_error_is_logged_not_raised(ana, caplog):
    def angry(sender: Any, **kwargs: Any) -> None:
        raise ValueError("not today")

    execution = make_execution(user=ana, state=TaskState.STARTED)
    executions_finished.connect(angry, dispatch_uid="test.angry")
    try:
        assert finish(execution)
    finally:
        executions_finished.disconnect(dispatch_uid="test.angry")
    assert "failed on executions_finished" in caplog.text
    assert len(notifications_of(ana)) == 1  # ours still ran


def test_reconciliation_notifies_lost_tasks_once(ana):
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="gone@host", last_seen=now, stopped_at=now)
    execution = make_execution(
        user=ana, worker="gone@host", state=TaskState.PROGRESS, started_at=now
    )
    unowned = make_execution(worker="gone@host", state=TaskState.STARTED, started_at=now)
    assert executions_mark_lost() == 2
    assert executions_mark_lost() == 0
    [notification] = TaskNotification.objects.all()
    assert (notification.user, notification.execution_id) == (ana, execution.pk)
    assert (notification.state, notification.level) == (TaskState.LOST, "error")
    assert not unowned.notifications.exists()


def test_text_is_rendered_in_the_viewers_language():
    with translation.override("en"):
        assert (
            notification_text(state=TaskState.FAILURE, label="Consolidar nómina")
            == "«Consolidar nómina» failed"
        )
        assert notification_text(state="", label="Hola") == "Hola"


# --- E-mail ----------------------------------------------------------------------------------


def test_failure_email_goes_once_to_those_who_asked(ana, other, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.TASKBOARD_SITE_URL = "https://sgm.example.com/"
    ana.email = "ana@example.com"
    ana.save()
    other.email = "otro@example.com"
    other.save()
    NotificationPreference.objects.create(user=ana, email_failures=True)
    failed = make_execution(user=ana, state=TaskState.STARTED)
    succeeded = make_execution(user=ana, state=TaskState.STARTED)
    not_asked = make_execution(user=other, state=TaskState.STARTED)
    finish(failed, TaskState.FAILURE)
    finish(succeeded, TaskState.SUCCESS)
    finish(not_asked, TaskState.FAILURE)
    ids = [failed.pk, succeeded.pk, not_asked.pk]
    assert notifications_email(execution_ids=ids) == 1
    assert notifications_email(execution_ids=ids) == 0  # claimed: never twice
    [message] = mail.outbox
    assert message.to == ["ana@example.com"]
    assert "Consolidar nómina" in message.subject
    assert f"https://sgm.example.com/tasks/{failed.task_id}/" in message.body
    assert TaskNotification.objects.get(execution=failed).emailed_at is not None
    assert TaskNotification.objects.get(execution=not_asked).emailed_at is None


def test_failure_email_is_enqueued_after_commit(
    ana, django_capture_on_commit_callbacks, monkeypatch
):
    ana.email = "ana@example.com"
    ana.save()
    NotificationPreference.objects.create(user=ana, email_failures=True)
    sent: list[list[int]] = []
    monkeypatch.setattr(
        "taskboard.services.notifications._enqueue_emails", lambda ids: sent.append(ids)
    )
    failed = make_execution(user=ana, state=TaskState.STARTED)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        finish(failed, TaskState.FAILURE)
    assert sent == []  # not before the notification is committed
    for callback in callbacks:
        callback()
    assert sent == [[failed.pk]]


def test_failed_email_is_left_for_a_retry(ana, settings, monkeypatch):
    ana.email = "ana@example.com"
    ana.save()
    NotificationPreference.objects.create(user=ana, email_failures=True)
    failed = make_execution(user=ana, state=TaskState.STARTED)
    finish(failed, TaskState.FAILURE)

    def refuse(*args: Any, **kwargs: Any) -> int:
        raise OSError("SMTP server down")

    monkeypatch.setattr("taskboard.services.notifications.send_mail", refuse)
    with pytest.raises(OSError):
        notifications_email(execution_ids=[failed.pk])
    assert TaskNotification.objects.get(execution=failed).emailed_at is None


# --- With a real worker ----------------------------------------------------------------------


def wait_for_notification(user: Any, execution_task_id: str) -> TaskNotification:
    found: TaskNotification = wait_until(
        lambda: TaskNotification.objects.filter(
            user=user, execution__task_id=execution_task_id
        ).first(),
        timeout=TIMEOUT,
    )
    return found


def wait_final(task_id: str) -> TaskExecution:
    found: TaskExecution = wait_until(
        lambda: TaskExecution.objects.filter(
            task_id=task_id, state__in=[TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED]
        ).first(),
        timeout=TIMEOUT,
    )
    return found


def test_worker_notifies_success_and_failure_once(worker, django_user_model):
    owner = django_user_model.objects.create_user("nieves", password="x-123456789")
    # add() takes no time: by default its success would not notify (the threshold).
    NotificationPreference.objects.create(user=owner, on_success=True)
    with launched_by(owner):
        added = worker_tasks.add.delay(20, 22)
        closing = cerrar_periodo.apply_async(("2025-01",), ignore_result=True)
    assert added.get(timeout=TIMEOUT) == 42
    success = wait_for_notification(owner, added.id)
    failure = wait_for_notification(owner, closing.id)
    assert (success.state, success.level) == (TaskState.SUCCESS, "success")
    assert (failure.state, failure.level) == (TaskState.FAILURE, "error")
    assert failure.message == "Cierre contable del periodo"
    # The same final state once more, as a duplicate signal from another process would.
    assert not apply(Write(("task_id", added.id), TaskState.SUCCESS, {"progress": 100}))
    executions_finished_send([("task_id", added.id), ("task_id", closing.id)])
    assert TaskNotification.objects.filter(user=owner).count() == 2


def test_worker_notifies_a_cancelled_task(worker, django_user_model):
    owner = django_user_model.objects.create_user("ramon", password="x-123456789")
    with launched_by(owner):
        result = exportar_nominas.apply_async(
            (5,), {"paginas": 400, "pausa": 0.05}, ignore_result=True
        )
    running = wait_until(
        lambda: TaskExecution.objects.filter(task_id=result.id, state=TaskState.PROGRESS).first(),
        TIMEOUT,
    )
    assert execution_cancel(execution=running, by=owner)
    notification = wait_for_notification(owner, result.id)
    assert (notification.state, notification.level) == (TaskState.REVOKED, "warning")
    assert TaskNotification.objects.filter(user=owner).count() == 1


def test_worker_respects_preferences_and_unowned_tasks(worker, django_user_model):
    owner = django_user_model.objects.create_user("paula", password="x-123456789")
    NotificationPreference.objects.create(
        user=owner, on_success=False, on_revoked=False, on_lost=False
    )
    with launched_by(owner):
        added = worker_tasks.add.apply_async((1, 2), ignore_result=True)
        closing = cerrar_periodo.apply_async(("2025-02",), ignore_result=True)
    nobodys = worker_tasks.add.apply_async((3, 4), ignore_result=True)
    wait_for_notification(owner, closing.id)
    wait_final(added.id)
    wait_final(nobodys.id)
    time.sleep(0.5)  # a notification would follow its row's commit at once
    assert list(TaskNotification.objects.values_list("execution__task_id", flat=True)) == [
        closing.id
    ]


def test_worker_emails_a_failure_once(worker, worker_mail_dir, django_user_model):
    owner = django_user_model.objects.create_user(
        "elena", password="x-123456789", email="elena@example.com"
    )
    NotificationPreference.objects.create(user=owner, email_failures=True)
    with launched_by(owner):
        closing = cerrar_periodo.apply_async(("2025-03",), ignore_result=True)
    notification = wait_for_notification(owner, closing.id)

    def sent() -> list[str]:
        texts = (path.read_text(errors="replace") for path in worker_mail_dir.iterdir())
        return [text for text in texts if f"/tasks/{closing.id}/" in text]

    # The worker's own Celery task sends it, through Django's file backend.
    [message] = wait_until(sent, TIMEOUT)
    assert "To: elena@example.com" in message
    emailed_at = TaskNotification.objects.get(pk=notification.pk).emailed_at
    assert emailed_at is not None
    executions_finished_send([("task_id", closing.id)])  # a duplicate: no second e-mail
    time.sleep(1.0)
    assert TaskNotification.objects.get(pk=notification.pk).emailed_at == emailed_at
    assert len(sent()) == 1


def test_failure_email_names_the_task_and_links_to_it(ana, settings, mailoutbox):
    """What the worker's e-mail task sends, run here with Django's test mail outbox."""
    ana.email = "ana@example.com"
    ana.save()
    NotificationPreference.objects.create(user=ana, email_failures=True)
    execution = make_execution(user=ana, state=TaskState.FAILURE, display_name="Cierre")
    TaskNotification.objects.create(
        user=ana, execution=execution, message="Cierre", state=TaskState.FAILURE
    )
    settings.TASKBOARD_SITE_URL = "https://sgm.example.com"
    assert notifications_email(execution_ids=[execution.pk]) == 1
    assert notifications_email(execution_ids=[execution.pk]) == 0  # once
    [mail] = mailoutbox
    assert mail.to == ["ana@example.com"] and "Cierre" in mail.subject
    assert f"https://sgm.example.com/tasks/{execution.task_id}/" in mail.body


# --- The bell, the page and preferences ----------------------------------------------------


def test_anonymous_is_sent_to_log_in(client, ana):
    [notification] = make_notifications(ana, 1)
    for name in ("notifications", "bell", "notification_preferences"):
        response = client.get(reverse(f"taskboard:{name}"))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    for url in (
        reverse("taskboard:notifications_read"),
        reverse("taskboard:notification_read", args=[notification.pk]),
    ):
        assert client.post(url).status_code == 302
    assert TaskNotification.objects.get(pk=notification.pk).read_at is None


def test_users_never_see_or_change_others_notifications(ana, other):
    [mine] = make_notifications(ana, 1)
    [theirs] = make_notifications(other, 1)
    TaskExecution.objects.filter(notifications=theirs).update(display_name="Secreto")
    TaskNotification.objects.filter(pk=theirs.pk).update(message="Secreto")
    client = client_for(ana)
    read_theirs = reverse("taskboard:notification_read", args=[theirs.pk])
    assert client.post(read_theirs).status_code == 404
    assert client.post(reverse("taskboard:notification_read", args=[10**30])).status_code == 404
    assert client.post(reverse("taskboard:notifications_read")).status_code == 302
    assert TaskNotification.objects.get(pk=theirs.pk).read_at is None
    assert TaskNotification.objects.get(pk=mine.pk).read_at is not None
    for name in ("notifications", "bell"):
        assert b"Secreto" not in client.get(reverse(f"taskboard:{name}")).content


def test_posts_need_csrf(ana):
    [notification] = make_notifications(ana, 1)
    client = Client(enforce_csrf_checks=True)
    client.force_login(ana)
    for url in (
        reverse("taskboard:notifications_read"),
        reverse("taskboard:notification_read", args=[notification.pk]),
        reverse("taskboard:notification_preferences"),
    ):
        assert client.post(url, headers=HX).status_code == 403
    assert TaskNotification.objects.get(pk=notification.pk).read_at is None
    assert not NotificationPreference.objects.exists()
    client.get(reverse("taskboard:notifications"))  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    response = client.post(
        reverse("taskboard:notifications_read"), headers={**HX, "X-CSRFToken": token}
    )
    assert response.status_code == 200
    assert TaskNotification.objects.get(pk=notification.pk).read_at is not None


def test_bell_is_a_polling_fragment_with_the_unread_count(ana):
    make_notifications(ana, 7)
    make_notifications(ana, 2, read_at=timezone.now())
    response = client_for(ana).get(reverse("taskboard:bell"), headers=HX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert html.startswith('<details id="notification-bell"')
    assert 'hx-get="/tasks/notifications/bell/"' in html and 'hx-swap="morph:outerHTML"' in html
    assert 'hx-trigger="every 5s, taskboard:changed from:body"' in html
    assert 'data-taskboard-hold="live open"' in html
    assert "taskboard:changed from:body" in html and "load," not in html
    assert 'data-unread="7"' in html
    assert '<span class="bell-count" aria-hidden="true">7</span>' in html
    assert html.count('class="bell-item') == 5  # the newest five unread
    assert "Tarea 0" in html and "Tarea 5" not in html
    assert response["Cache-Control"].startswith("max-age=0")


def test_every_page_has_a_bell_that_loads_itself(ana, django_assert_max_num_queries):
    make_notifications(ana, 3)
    client = client_for(ana)
    with django_assert_max_num_queries(50) as captured:
        page = client.get(reverse("taskboard:dashboard")).content.decode()
    # The page pays nothing for the bell: it loads itself afterwards.
    assert not [q for q in captured.captured_queries if "tasknotification" in q["sql"]]
    assert 'id="notification-bell"' in page
    assert 'hx-trigger="load, every 5s' in page
    assert 'href="/tasks/notifications/"' in page  # without JavaScript: a link
    assert 'id="notification-bell"' not in Client().get("/accounts/login/").content.decode()


def test_mark_all_read_from_the_bell(ana):
    make_notifications(ana, 3)
    client = client_for(ana)
    response = client.post(reverse("taskboard:notifications_read"), headers=HX)
    assert response.status_code == 200
    assert json.loads(response["HX-Trigger"]) == {"taskboard:changed": {}}
    html = response.content.decode()
    assert "<html" not in html and 'data-unread="0"' in html and "bell-count" not in html
    assert not TaskNotification.objects.filter(read_at__isnull=True).exists()


def test_mark_read_without_javascript_redirects(ana):
    first, second = make_notifications(ana, 2)
    client = client_for(ana)
    detail = reverse("taskboard:detail", args=[task_id_of(first)])
    response = client.post(
        reverse("taskboard:notification_read", args=[first.pk]), {"next": detail}
    )
    assert response.status_code == 302 and response["Location"] == detail
    evil = client.post(
        reverse("taskboard:notification_read", args=[second.pk]),
        {"next": "https://evil.example.com/"},
    )
    assert evil["Location"] == reverse("taskboard:notifications")
    assert not TaskNotification.objects.filter(read_at__isnull=True).exists()
    back = client.post(reverse("taskboard:notifications_read"), {"next": "/tasks/?page=2"})
    assert back.status_code == 302 and back["Location"] == "/tasks/?page=2"
    assert client.get(reverse("taskboard:notification_read", args=[first.pk])).status_code == 405


def test_page_lists_newest_first_highlights_unread_and_pages(ana):
    rows = make_notifications(ana, 30)
    TaskNotification.objects.filter(pk=rows[1].pk).update(read_at=timezone.now())
    client = client_for(ana)
    first = client.get(reverse("taskboard:notifications"))
    html = first.content.decode()
    assert first.status_code == 200 and "<html" in html
    assert html.index("Tarea 0") < html.index("Tarea 1") < html.index("Tarea 24")
    assert "Tarea 25" not in html and 'href="?page=2"' in html
    assert html.count('class="notification level-success unread"') == 24
    assert f'data-notification="{rows[1].pk}"' in html
    assert f"/tasks/{task_id_of(rows[0])}/" in html  # its link to the task
    second = client.get(reverse("taskboard:notifications"), {"page": "2"}).content.decode()
    assert "Tarea 29" in second and 'href="?page=1"' in second
    for bad in ("abc", "0", "-1", "1" * 20):
        assert client.get(reverse("taskboard:notifications"), {"page": bad}).status_code == 400
    assert client.get(reverse("taskboard:notifications"), {"page": "9"}).status_code == 404


def test_page_shows_text_in_the_viewers_language(ana):
    execution = make_execution(user=ana, state=TaskState.STARTED)
    finish(execution, TaskState.FAILURE)
    client = client_for(ana)
    client.cookies["django_language"] = "en"
    html = client.get(reverse("taskboard:notifications")).content.decode()
    assert "«Consolidar nómina» failed" in html


def test_preferences_default_all_on_and_save(ana, other):
    client = client_for(ana)
    page = client.get(reverse("taskboard:notification_preferences")).content.decode()
    assert page.count("checked") == 4  # four states on, e-mail off
    response = client.post(
        reverse("taskboard:notification_preferences"),
        {"on_failure": "on", "on_lost": "on", "email_failures": "on"},
        follow=True,
    )
    assert response.status_code == 200 and response.redirect_chain
    saved = NotificationPreference.objects.get(user=ana)
    assert (saved.on_success, saved.on_failure, saved.on_revoked, saved.on_lost) == (
        False,
        True,
        False,
        True,
    )
    assert saved.email_failures
    assert not NotificationPreference.objects.filter(user=other).exists()
    assert client.put(reverse("taskboard:notification_preferences")).status_code == 405


def test_query_counts_are_pinned(ana, other, django_assert_max_num_queries):
    make_notifications(ana, 300)
    make_notifications(other, 100)
    NotificationPreference.objects.create(user=ana)
    client = client_for(ana)
    with django_assert_max_num_queries(4):  # session, user, unread page, unread count
        assert client.get(reverse("taskboard:bell"), headers=HX).status_code == 200
    with django_assert_max_num_queries(3):
        assert client.get(reverse("taskboard:notifications"), {"page": "3"}).status_code == 200
    with django_assert_max_num_queries(3):
        response = client.get(reverse("taskboard:notification_preferences"))
        assert response.status_code == 200
    with django_assert_max_num_queries(6):
        response = client.post(reverse("taskboard:notification_preferences"), {"on_lost": "on"})
        assert response.status_code == 302
    with django_assert_max_num_queries(5):
        response = client.post(reverse("taskboard:notifications_read"), headers=HX)
        assert response.status_code == 200
    [one] = make_notifications(ana, 1)
    with django_assert_max_num_queries(4):
        response = client.post(reverse("taskboard:notification_read", args=[one.pk]))
        assert response.status_code == 302
