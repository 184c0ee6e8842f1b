from __future__ import annotations

import pytest
from django.utils import translation

from taskboard.models import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    TaskExecution,
    TaskState,
    can_transition,
)
from tests.factories import make_execution


def test_terminal_states_are_final():
    for terminal in TERMINAL_STATES:
        for target in TaskState.values:
            assert not can_transition(terminal, target), (terminal, target)


def test_lifecycle_moves_forward_only():
    assert can_transition(TaskState.PENDING, TaskState.RECEIVED)
    assert can_transition(TaskState.RECEIVED, TaskState.STARTED)
    assert can_transition(TaskState.STARTED, TaskState.PROGRESS)
    assert can_transition(TaskState.PROGRESS, TaskState.SUCCESS)
    assert can_transition(TaskState.RETRY, TaskState.STARTED)
    assert not can_transition(TaskState.STARTED, TaskState.RECEIVED)
    assert not can_transition(TaskState.PROGRESS, TaskState.STARTED)
    assert all(can_transition(s, TaskState.LOST) for s in ACTIVE_STATES)


def test_state_labels_are_translated():
    with translation.override("es"):
        assert str(TaskState.FAILURE.label) == "Fallida"
        assert str(TaskExecution._meta.verbose_name) == "ejecución de tarea"
    with translation.override("en"):
        assert str(TaskState.FAILURE.label) == "Failed"


@pytest.mark.django_db
def test_str_and_label():
    execution = make_execution(display_name="", task_name="sgm.x.tasks.y")
    assert execution.label == "sgm.x.tasks.y"
    assert execution.task_id in str(execution)
    assert execution.is_terminal and not execution.is_running


@pytest.mark.django_db
def test_templates_are_registered_from_decorated_tasks():
    from taskboard.models import TaskTemplate
    from taskboard.tracking import sync_templates

    TaskTemplate.objects.all().delete()
    sync_templates()
    template = TaskTemplate.objects.get(key="nomina.consolidar")
    assert (template.module, template.display_name) == ("nomina", "Consolidar nómina")
    assert template.task_name == "sgm.nomina.tasks.consolidar_nomina"
    assert TaskTemplate.objects.filter(key="contabilidad.cerrar_periodo").exists()
