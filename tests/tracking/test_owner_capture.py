from __future__ import annotations

from taskboard.models import TaskExecution, TaskState
from tests.processes import wait_until


def test_task_launched_from_a_request_is_owned_by_the_logged_in_user(
    worker, client, django_user_model
):
    user = django_user_model.objects.create_user("maria", password="x-123456789")
    client.force_login(user)
    response = client.post("/nomina/consolidar/", {"periodo_id": "3"})
    assert response.status_code == 202
    task_id = response.json()["task_id"]

    execution = TaskExecution.objects.get(task_id=task_id)  # recorded at publish
    assert execution.user_id == user.pk
    assert execution.args_summary == "[3]"  # no user argument was passed
    wait_until(
        lambda: TaskExecution.objects.get(task_id=task_id).state == TaskState.SUCCESS,
        timeout=30,
    )
    assert TaskExecution.objects.get(task_id=task_id).user_id == user.pk


def test_launch_rejects_bad_input_without_launching(client, django_user_model, db):
    user = django_user_model.objects.create_user("pepe", password="x-123456789")
    client.force_login(user)
    response = client.post("/nomina/consolidar/", {"periodo_id": "abc"})
    assert response.status_code == 400
    assert "error" in response.json()
    assert not TaskExecution.objects.exists()


def test_launch_requires_login(client, db):
    response = client.post("/nomina/consolidar/", {"periodo_id": "3"})
    assert response.status_code == 302
    assert not TaskExecution.objects.exists()
