from __future__ import annotations

from taskboard.checks import check_settings


def ids(settings_overrides, settings) -> set[str]:
    for name, value in settings_overrides.items():
        setattr(settings, name, value)
    return {str(message.id) for message in check_settings()}


def test_default_configuration_is_clean(settings):
    assert ids({}, settings) == set()


def test_misconfiguration_is_reported(settings):
    assert "taskboard.E001" in ids({"TASKBOARD_TRACK": "some"}, settings)
    assert "taskboard.E002" in ids({"TASKBOARD_REDACT_PATTERN": "(unclosed"}, settings)
    assert "taskboard.E003" in ids({"TASKBOARD_PROGRESS_WRITES_PER_SECOND": 0}, settings)
    assert "taskboard.E004" in ids(
        {"TASKBOARD_WORKER_SOURCES": ["flower", "no.such.Source"]}, settings
    )


def test_flower_without_a_password_is_a_warning(settings):
    assert ids({"FLOWER_URL": "http://flower:5555", "FLOWER_PASSWORD": ""}, settings) == {
        "taskboard.W002"
    }
    assert ids({"FLOWER_URL": "http://flower:5555", "FLOWER_PASSWORD": "s3cret"}, settings) == set()


def test_missing_middleware_is_a_warning(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "taskboard" not in m]
    assert ids({}, settings) == {"taskboard.W001"}
