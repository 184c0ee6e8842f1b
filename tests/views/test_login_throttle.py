"""F8: login throttling (django-axes) over the real login form.

Before: 30 wrong passwords were answered and then the right one accepted. Now, after
AXES_FAILURE_LIMIT failures for one username from one address, that pair is refused with a
429 and the cool-down message on the login page (the right password included) until the
cool-down has passed or staff delete the attempt in the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import F
from django.test import Client

from tests.factories import client_for

PASSWORD = "the-right-pass-42"
LOGIN = "/accounts/login/"
EN = {"Accept-Language": "en"}
LOCKED = "Too many failed login attempts."


@pytest.fixture
def nora(django_user_model):
    return django_user_model.objects.create_user("nora", password=PASSWORD)


def attempt(client: Client, password: str, username: str = "nora"):
    return client.post(
        LOGIN, {"username": username, "password": password, "next": "/tasks/"}, headers=EN
    )


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def lock_out(client: Client) -> None:
    for number in range(1, settings.AXES_FAILURE_LIMIT):
        response = attempt(client, f"wrong-{number}")
        assert response.status_code == 200, number  # the form again, with its error
        assert LOCKED not in response.content.decode()
    response = attempt(client, "wrong-last")
    assert response.status_code == 429
    assert LOCKED in response.content.decode()


def test_thirty_wrong_passwords_then_the_right_one_is_refused(db, nora):
    client = Client()
    assert settings.AXES_FAILURE_LIMIT < 30
    answers = [attempt(client, f"guess-{n}").status_code for n in range(30)]
    limit = settings.AXES_FAILURE_LIMIT
    assert answers[: limit - 1] == [200] * (limit - 1)
    assert answers[limit - 1 :] == [429] * (30 - limit + 1)

    response = attempt(client, PASSWORD)
    html = response.content.decode()
    assert response.status_code == 429 and not logged_in(client)
    # The login page itself, saying why and for how long (the default 15 minutes).
    assert '<form method="post" class="login">' in html
    assert 'role="alert"' in html and LOCKED in html and "15 minutes" in html
    assert 'value="nora"' in html  # the username is kept in the form
    assert response["Retry-After"] == str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    assert client.get("/tasks/").status_code == 302  # still a visitor


def test_the_message_is_translated(db, nora):
    client = Client()
    lock_out(client)
    spanish = client.post(
        LOGIN, {"username": "nora", "password": PASSWORD}, headers={"Accept-Language": "es"}
    )
    assert spanish.status_code == 429
    assert '<html lang="es">' in spanish.content.decode()
    assert 'class="error lockout" role="alert"' in spanish.content.decode()


def test_the_lock_is_per_user_and_address(db, nora, django_user_model):
    django_user_model.objects.create_user("otto", password=PASSWORD)
    client = Client()
    lock_out(client)
    # Another user from the same address, and the same user from another address, log in.
    assert attempt(Client(), PASSWORD, username="otto").status_code == 302
    elsewhere = Client(REMOTE_ADDR="10.1.2.3")
    assert attempt(elsewhere, PASSWORD).status_code == 302 and logged_in(elsewhere)
    assert attempt(Client(), PASSWORD).status_code == 429


def test_after_the_cool_down_the_right_password_works(db, nora):
    client = Client()
    lock_out(client)
    assert attempt(client, PASSWORD).status_code == 429
    # The cool-down passes (the attempts are dated back by it rather than waited for).
    AccessAttempt.objects.update(
        attempt_time=F("attempt_time") - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )
    response = attempt(client, PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/tasks/"
    assert logged_in(client)
    # A success resets the count: one new mistake is answered as a mistake again.
    assert attempt(Client(), "wrong-again").status_code == 200


def test_staff_unlock_in_the_admin(db, nora, django_user_model):
    client = Client()
    lock_out(client)
    admin = django_user_model.objects.create_superuser("boss", password="boss-pass-77")
    staff = client_for(admin)
    listing = staff.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "nora" in listing.content.decode()
    locked = AccessAttempt.objects.get(username="nora")
    confirm = staff.get(f"/admin/axes/accessattempt/{locked.pk}/delete/")
    assert confirm.status_code == 200
    deleted = staff.post(f"/admin/axes/accessattempt/{locked.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not AccessAttempt.objects.exists()

    response = attempt(client, PASSWORD)
    assert response.status_code == 302 and logged_in(client)


def test_the_admin_login_is_throttled_too(db, django_user_model):
    django_user_model.objects.create_superuser("boss", password="boss-pass-77")
    client = Client()
    answers = [
        client.post("/admin/login/", {"username": "boss", "password": f"no-{n}"}).status_code
        for n in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert answers[-1] == 429 and set(answers[:-1]) == {200}
    right = client.post("/admin/login/", {"username": "boss", "password": "boss-pass-77"})
    assert right.status_code == 429 and "_auth_user_id" not in client.session
