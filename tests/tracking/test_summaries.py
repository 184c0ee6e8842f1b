from __future__ import annotations

from django.test import override_settings

from taskboard.tracking import summaries


def test_redact_replaces_secret_keys_at_any_depth():
    value = {
        "user": "ana",
        "password": "hunter2",
        "nested": {"api_key": "k-123", "items": [{"Token": "t"}, {"amount": 5}]},
        "client_secret": "s",
    }
    text = summaries.to_text(value)
    assert "hunter2" not in text and "k-123" not in text and '"t"' not in text
    assert '"client_secret": "[REDACTED]"' in text
    assert '"user": "ana"' in text and '"amount": 5' in text


def test_args_summary_redacts_positional_secret_parameters():
    text = summaries.args_summary(["ana", "hunter2", 3], ("username", "password", "tries"))
    assert text == '["ana", "[REDACTED]", 3]'


def test_redaction_pattern_is_configurable():
    with override_settings(TASKBOARD_REDACT_PATTERN=r"^periodo$"):
        assert summaries.to_text({"periodo": 7, "password": "x"}) == (
            '{"periodo": "[REDACTED]", "password": "x"}'
        )


def test_summary_is_capped():
    with override_settings(TASKBOARD_SUMMARY_MAX_CHARS=50):
        text = summaries.to_text(["x" * 500])
    assert len(text) == 50 and text.endswith(summaries.ELLIPSIS)


def test_long_collections_and_deep_nesting_are_cut():
    deep: dict[str, object] = {}
    node = deep
    for _ in range(20):
        node["n"] = {}
        node = node["n"]  # type: ignore[assignment]
    assert summaries.ELLIPSIS in summaries.to_text(deep)
    assert '"…+150"' in summaries.to_text(list(range(250)))


def test_unserialisable_values_are_represented():
    assert summaries.to_text({"when": object}) == '{"when": "<class \'object\'>"}'


def test_traceback_keeps_its_tail():
    with override_settings(TASKBOARD_TRACEBACK_MAX_CHARS=20):
        text = summaries.traceback_summary("a" * 100 + "ValueError: boom")
    assert text.endswith("ValueError: boom") and len(text) == 20


def test_exception_summary_names_module_and_message():
    class BusinessError(Exception):
        pass

    kind, message = summaries.exception_summary(BusinessError("no cuadra"))
    assert kind.endswith("BusinessError") and kind.startswith("tests.")
    assert message == "no cuadra"
    assert summaries.exception_summary(ValueError("x")) == ("ValueError", "x")
