from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import taskboard.conf
from taskboard.checks import RULES, check_settings
from taskboard.conf import Settings, conf


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


NAN = float("nan")
INF = float("inf")
WITH_PASSWORD: dict[str, object] = {"FLOWER_PASSWORD": "s3cret"}  # FLOWER_URL cases: no W002 on top

# (setting, a bad value, the id reported, other settings of the case)
BAD_VALUES: list[tuple[str, object, str, dict[str, object]]] = [
    ("TASKBOARD_TRACK", "some", "taskboard.E001", {}),
    ("TASKBOARD_TRACK", None, "taskboard.E001", {}),
    ("TASKBOARD_TRACK", 1, "taskboard.E001", {}),
    ("TASKBOARD_REDACT_PATTERN", "(unclosed", "taskboard.E002", {}),
    ("TASKBOARD_REDACT_PATTERN", 5, "taskboard.E002", {}),
    ("TASKBOARD_REDACT_PATTERN", None, "taskboard.E002", {}),
    ("TASKBOARD_PROGRESS_WRITES_PER_SECOND", 0, "taskboard.E003", {}),
    ("TASKBOARD_PROGRESS_WRITES_PER_SECOND", -1, "taskboard.E003", {}),
    ("TASKBOARD_PROGRESS_WRITES_PER_SECOND", "abc", "taskboard.E003", {}),
    ("TASKBOARD_PROGRESS_WRITES_PER_SECOND", True, "taskboard.E003", {}),
    ("TASKBOARD_PROGRESS_WRITES_PER_SECOND", NAN, "taskboard.E003", {}),
    ("TASKBOARD_PROGRESS_WRITES_PER_SECOND", INF, "taskboard.E003", {}),
    ("TASKBOARD_WORKER_SOURCES", ["flower", "no.such.Source"], "taskboard.E004", {}),
    ("TASKBOARD_WORKER_SOURCES", "heartbeats", "taskboard.E004", {}),
    ("TASKBOARD_WORKER_SOURCES", ["heartbeats", 1], "taskboard.E004", {}),
    ("TASKBOARD_WORKER_SOURCES", None, "taskboard.E004", {}),
    ("TASKBOARD_ENABLED", 1, "taskboard.E005", {}),
    ("TASKBOARD_ENABLED", "false", "taskboard.E005", {}),
    ("TASKBOARD_ENABLED", None, "taskboard.E005", {}),
    ("TASKBOARD_EXCLUDE", "celery.*", "taskboard.E006", {}),
    ("TASKBOARD_EXCLUDE", ["celery.*", 1], "taskboard.E006", {}),
    ("TASKBOARD_EXCLUDE", None, "taskboard.E006", {}),
    ("TASKBOARD_SUMMARY_MAX_CHARS", -1, "taskboard.E007", {}),
    ("TASKBOARD_SUMMARY_MAX_CHARS", "abc", "taskboard.E007", {}),
    ("TASKBOARD_SUMMARY_MAX_CHARS", True, "taskboard.E007", {}),
    ("TASKBOARD_SUMMARY_MAX_CHARS", 1.5, "taskboard.E007", {}),
    ("TASKBOARD_SUMMARY_MAX_CHARS", NAN, "taskboard.E007", {}),
    ("TASKBOARD_TRACEBACK_MAX_CHARS", -1, "taskboard.E008", {}),
    ("TASKBOARD_TRACEBACK_MAX_CHARS", "abc", "taskboard.E008", {}),
    ("TASKBOARD_WRITE_DELAY", -1, "taskboard.E009", {}),
    ("TASKBOARD_WRITE_DELAY", "abc", "taskboard.E009", {}),
    ("TASKBOARD_WRITE_DELAY", True, "taskboard.E009", {}),
    ("TASKBOARD_WRITE_DELAY", NAN, "taskboard.E009", {}),
    ("TASKBOARD_WRITE_DELAY", INF, "taskboard.E009", {}),
    ("TASKBOARD_STARTED_WRITE_DELAY", -0.1, "taskboard.E010", {}),
    ("TASKBOARD_STARTED_WRITE_DELAY", "abc", "taskboard.E010", {}),
    ("TASKBOARD_WORKERS_CACHE_SECONDS", 0, "taskboard.E011", {}),
    ("TASKBOARD_WORKERS_CACHE_SECONDS", -1, "taskboard.E011", {}),
    ("TASKBOARD_WORKERS_CACHE_SECONDS", "abc", "taskboard.E011", {}),
    ("TASKBOARD_WORKERS_CACHE_SECONDS", NAN, "taskboard.E011", {}),
    ("TASKBOARD_CACHE_ALIAS", "no-such-cache", "taskboard.E012", {}),
    ("TASKBOARD_CACHE_ALIAS", 1, "taskboard.E012", {}),
    ("TASKBOARD_HEARTBEAT_INTERVAL", 0, "taskboard.E013", {}),
    ("TASKBOARD_HEARTBEAT_INTERVAL", "abc", "taskboard.E013", {}),
    ("TASKBOARD_HEARTBEAT_INTERVAL", NAN, "taskboard.E013", {}),
    ("TASKBOARD_WORKER_OFFLINE_AFTER", 0, "taskboard.E014", {}),
    ("TASKBOARD_WORKER_OFFLINE_AFTER", "abc", "taskboard.E014", {}),
    ("TASKBOARD_WORKER_OFFLINE_AFTER", True, "taskboard.E014", {}),
    ("TASKBOARD_INSPECT_TIMEOUT", 0, "taskboard.E015", {}),
    ("TASKBOARD_INSPECT_TIMEOUT", "abc", "taskboard.E015", {}),
    ("TASKBOARD_FLOWER_DEADLINE", 0, "taskboard.E030", {}),
    ("TASKBOARD_RETENTION_DAYS", -1, "taskboard.E016", {}),
    ("TASKBOARD_RETENTION_DAYS", "abc", "taskboard.E016", {}),
    ("TASKBOARD_RETENTION_DAYS", True, "taskboard.E016", {}),
    ("TASKBOARD_RETENTION_DAYS", NAN, "taskboard.E016", {}),
    ("FLOWER_URL", 5555, "taskboard.E017", {}),
    ("FLOWER_URL", None, "taskboard.E017", {}),
    ("FLOWER_URL", "flower:5555", "taskboard.E017", WITH_PASSWORD),
    ("FLOWER_URL", "http://", "taskboard.E017", WITH_PASSWORD),
    ("FLOWER_URL", "ftp://flower:5555", "taskboard.E017", WITH_PASSWORD),
    ("FLOWER_USER", 5, "taskboard.E018", {}),
    ("FLOWER_USER", None, "taskboard.E018", {}),
    ("FLOWER_PASSWORD", 5, "taskboard.E019", {}),
    ("TASKBOARD_FLOWER_TIMEOUT", 1.0, "taskboard.E020", {}),
    ("TASKBOARD_FLOWER_TIMEOUT", "abc", "taskboard.E020", {}),
    ("TASKBOARD_FLOWER_TIMEOUT", (1.0,), "taskboard.E020", {}),
    ("TASKBOARD_FLOWER_TIMEOUT", (1.0, 2.0, 3.0), "taskboard.E020", {}),
    ("TASKBOARD_FLOWER_TIMEOUT", (0, 3.0), "taskboard.E020", {}),
    ("TASKBOARD_FLOWER_TIMEOUT", (1.0, "abc"), "taskboard.E020", {}),
    ("TASKBOARD_FLOWER_TIMEOUT", (1.0, NAN), "taskboard.E020", {}),
    ("TASKBOARD_FLOWER_TIMEOUT", (True, 3.0), "taskboard.E020", {}),
    ("TASKBOARD_REVOKE_VIA_FLOWER", 1, "taskboard.E021", {}),
    ("TASKBOARD_REVOKE_VIA_FLOWER", "yes", "taskboard.E021", {}),
    ("TASKBOARD_SITE_URL", "sgm.example.com", "taskboard.E022", {}),
    ("TASKBOARD_SITE_URL", "https://", "taskboard.E022", {}),
    ("TASKBOARD_SITE_URL", "mailto:admin@example.com", "taskboard.E022", {}),
    ("TASKBOARD_SITE_URL", 5, "taskboard.E022", {}),
    ("TASKBOARD_CALL_MAX_CHARS", -1, "taskboard.E023", {}),
    ("TASKBOARD_CALL_MAX_CHARS", "abc", "taskboard.E023", {}),
    ("TASKBOARD_BULK_BATCH_SIZE", 0, "taskboard.E024", {}),
    ("TASKBOARD_BULK_BATCH_SIZE", -1, "taskboard.E024", {}),
    ("TASKBOARD_BULK_BATCH_SIZE", "abc", "taskboard.E024", {}),
    ("TASKBOARD_BULK_BATCH_SIZE", True, "taskboard.E024", {}),
    ("TASKBOARD_BULK_BATCH_SIZE", 2.0, "taskboard.E024", {}),
    ("TASKBOARD_ETA_MIN_PROGRESS", 0, "taskboard.E026", {}),
    ("TASKBOARD_ETA_MIN_PROGRESS", 101, "taskboard.E026", {}),
    ("TASKBOARD_ETA_MIN_PROGRESS", "abc", "taskboard.E026", {}),
    ("TASKBOARD_ETA_MIN_PROGRESS", True, "taskboard.E026", {}),
    ("TASKBOARD_TYPICAL_DURATION_RUNS", 0, "taskboard.E027", {}),
    ("TASKBOARD_TYPICAL_DURATION_RUNS", "abc", "taskboard.E027", {}),
    ("TASKBOARD_TYPICAL_DURATION_RUNS", NAN, "taskboard.E027", {}),
    ("TASKBOARD_BUFFER_MAX_WRITES", 0, "taskboard.E040", {}),
    ("TASKBOARD_BUFFER_MAX_WRITES", "abc", "taskboard.E040", {}),
    ("TASKBOARD_BUFFER_MAX_BYTES", 0, "taskboard.E041", {}),
    ("TASKBOARD_BUFFER_MAX_BYTES", 1.5, "taskboard.E041", {}),
    ("TASKBOARD_BUFFER_RETRY_SECONDS", (5.0, 0.5), "taskboard.E042", {}),
    ("TASKBOARD_BUFFER_RETRY_SECONDS", (0, 5.0), "taskboard.E042", {}),
    ("TASKBOARD_BUFFER_RETRY_SECONDS", 1.0, "taskboard.E042", {}),
    ("TASKBOARD_SPILL_DIR", "var/spill", "taskboard.E043", {}),
    ("TASKBOARD_SPILL_DIR", 5, "taskboard.E043", {}),
    ("TASKBOARD_RECONCILE_INTERVAL", -1, "taskboard.E060", {}),
    ("TASKBOARD_RECONCILE_INTERVAL", "abc", "taskboard.E060", {}),
    ("TASKBOARD_MAX_UNFINISHED_PER_USER", -1, "taskboard.E070", {}),
    ("TASKBOARD_MAX_UNFINISHED_PER_USER", 2.5, "taskboard.E070", {}),
    ("TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE", -1, "taskboard.E071", {}),
    ("TASKBOARD_MAX_UNFINISHED_PER_TEMPLATE", True, "taskboard.E071", {}),
    ("TASKBOARD_MAX_UNFINISHED_PER_STAFF", "many", "taskboard.E072", {}),
    ("TASKBOARD_LAUNCHES_PER_MINUTE", -5, "taskboard.E073", {}),
    ("TASKBOARD_LAUNCHES_PER_MINUTE", None, "taskboard.E073", {}),
    ("TASKBOARD_REDACT_VALUE_PATTERN", "(unclosed", "taskboard.E090", {}),
    ("TASKBOARD_REDACT_VALUE_PATTERN", None, "taskboard.E090", {}),
    ("TASKBOARD_REDACT_VALUES", "yes", "taskboard.E091", {}),
    ("TASKBOARD_NOTIFY_SUCCESS_AFTER_SECONDS", -1, "taskboard.E100", {}),
    ("TASKBOARD_NOTIFY_SUCCESS_AFTER_SECONDS", "60", "taskboard.E100", {}),
    ("TASKBOARD_NOTIFY_SUCCESS_AFTER_SECONDS", NAN, "taskboard.E100", {}),
    ("TASKBOARD_ALERT_WEBHOOK_TIMEOUT", 0, "taskboard.E110", {}),
    ("TASKBOARD_ALERT_WEBHOOK_TIMEOUT", "5", "taskboard.E110", {}),
    ("TASKBOARD_ALERT_LOCK_SECONDS", -1, "taskboard.E111", {}),
    ("TASKBOARD_ALERT_LOCK_SECONDS", NAN, "taskboard.E111", {}),
    ("TASKBOARD_METRICS_TOKEN", 12345, "taskboard.E112", {}),
    ("TASKBOARD_METRICS_CACHE_SECONDS", 0, "taskboard.E113", {}),
    ("TASKBOARD_METRICS_CACHE_SECONDS", "10", "taskboard.E113", {}),
]


def conf_properties() -> list[str]:
    return [
        name
        for name, member in vars(Settings).items()
        if isinstance(member, property) and name != "redact_regex"
    ]


@pytest.mark.parametrize(
    ("setting", "value", "expected", "others"),
    BAD_VALUES,
    ids=[f"{setting}={value!r}" for setting, value, _, _ in BAD_VALUES],
)
def test_a_bad_value_is_reported_with_its_id(settings, setting, value, expected, others):
    assert ids({**others, setting: value}, settings) == {expected}
    # ... and taskboard.conf reads it without raising (the default, for a wrong type).
    for name in [*conf_properties(), "redact_regex"]:
        getattr(conf, name)


def test_every_setting_has_a_bad_value_case():
    assert {setting for setting, *_ in BAD_VALUES} == {rule.setting for rule in RULES}


def test_the_message_names_the_setting_what_it_is_and_what_is_expected(settings):
    settings.TASKBOARD_BULK_BATCH_SIZE = "abc"
    (message,) = check_settings()
    assert message.msg == (
        'TASKBOARD_BULK_BATCH_SIZE must be a whole number, 1 or more; it is "abc".'
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"TASKBOARD_SUMMARY_MAX_CHARS": 0, "TASKBOARD_CALL_MAX_CHARS": 0},
        {"TASKBOARD_WRITE_DELAY": 0, "TASKBOARD_STARTED_WRITE_DELAY": 0.0},
        {"TASKBOARD_RETENTION_DAYS": 0, "TASKBOARD_INSPECT_TIMEOUT": 0.5},
        {"TASKBOARD_ETA_MIN_PROGRESS": 100, "TASKBOARD_BULK_BATCH_SIZE": 1},
        {"TASKBOARD_EXCLUDE": [], "TASKBOARD_WORKER_SOURCES": ["heartbeats"]},
        {"TASKBOARD_FLOWER_TIMEOUT": [1, 2.5], "TASKBOARD_ENABLED": False},
        {"FLOWER_URL": "https://admin:s3cret@flower.example.com:5555/", **WITH_PASSWORD},
        {"TASKBOARD_SITE_URL": "https://sgm.example.com/", "FLOWER_USER": "admin"},
        {"TASKBOARD_TRACK": "decorated", "TASKBOARD_REDACT_PATTERN": "^secret$"},
    ],
)
def test_good_values_are_not_reported(settings, overrides):
    assert ids(overrides, settings) == set()


def test_properties_return_values_as_they_are(settings):
    settings.TASKBOARD_BULK_BATCH_SIZE = 0
    settings.TASKBOARD_ETA_MIN_PROGRESS = 0
    settings.TASKBOARD_FLOWER_TIMEOUT = [2, 4]
    assert (conf.BULK_BATCH_SIZE, conf.ETA_MIN_PROGRESS) == (0, 0)
    assert conf.FLOWER_TIMEOUT == (2.0, 4.0)
    settings.TASKBOARD_BULK_BATCH_SIZE = "abc"
    settings.TASKBOARD_FLOWER_TIMEOUT = "abc"
    assert (conf.BULK_BATCH_SIZE, conf.FLOWER_TIMEOUT) == (200, (1.0, 3.0))


@pytest.mark.parametrize(
    "overrides",
    [
        {"TASKBOARD_WORKER_OFFLINE_AFTER": 2},
        {"TASKBOARD_WORKER_OFFLINE_AFTER": 1.5},
        {"TASKBOARD_HEARTBEAT_INTERVAL": 30},
    ],
)
def test_offline_before_the_next_heartbeat_is_a_warning(settings, overrides):
    assert ids(overrides, settings) == {"taskboard.W003"}


def test_every_conf_property_has_a_check():
    """Each property of taskboard.conf.Settings reads one setting, and the table checks it
    with conf's default."""
    checked = {rule.setting: rule for rule in RULES}
    assert len(checked) == len(RULES), "one rule per setting"
    source = Path(taskboard.conf.__file__).read_text()
    read = set(re.findall(r'_get\(\s*"([A-Z_]+)"', source))
    assert read == set(checked)
    for name in conf_properties():
        (setting,) = re.findall(
            r'_get\(\s*"([A-Z_]+)"', inspect.getsource(vars(Settings)[name].fget)
        )
        assert setting in checked, f"conf.{name} reads {setting}, which no check validates"
    for call in ast.walk(ast.parse(source)):
        if isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "_get":
            key, default = call.args[0], call.args[1]
            assert isinstance(key, ast.Constant)
            assert isinstance(key.value, str)
            value = (
                getattr(taskboard.conf, default.id)
                if isinstance(default, ast.Name)
                else ast.literal_eval(default)
            )
            assert checked[key.value].default == value, key.value


def test_readme_lists_every_check_id_of_the_code():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = set(
        re.findall(r'id="(taskboard\.[EW]\d{3})"', (root / "taskboard/checks.py").read_text())
    )
    code |= set(re.findall(r'"(taskboard\.[EW]\d{3})"', (root / "taskboard/checks.py").read_text()))
    readme = set(re.findall(r"`(taskboard\.[EW]\d{3})`", (root / "README.md").read_text()))
    assert code
    assert readme == code
