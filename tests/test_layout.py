"""The layout keeps its promises: tracking stays below the web layers, and "staff or owner"
is decided in taskboard/permissions.py alone."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRACKING_MAY_IMPORT = ("taskboard.models", "taskboard.conf", "taskboard.signals")


def _taskboard_imports(path: Path) -> list[str]:
    """Every taskboard module a file imports, at the top or inside a function."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            base = node.module
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return [name for name in names if name == "taskboard" or name.startswith("taskboard.")]


def _allowed_in_tracking(name: str) -> bool:
    if name in TRACKING_MAY_IMPORT or name == "taskboard.tracking":
        return True
    return name.startswith("taskboard.tracking.") or any(
        name.startswith(f"{allowed}.") for allowed in TRACKING_MAY_IMPORT
    )


def test_tracking_imports_only_models_conf_and_signals():
    files = sorted((ROOT / "taskboard" / "tracking").glob("*.py"))
    assert len(files) >= 8
    wrong = {
        f"{path.name}: {name}"
        for path in files
        for name in _taskboard_imports(path)
        if not _allowed_in_tracking(name)
    }
    assert not wrong, f"taskboard/tracking/ reaches above models/conf/signals: {sorted(wrong)}"


def test_the_import_check_catches_a_forbidden_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from taskboard.selectors.executions import execution_list\n")
    found = _taskboard_imports(sample)
    assert "taskboard.selectors.executions" in found
    assert not all(_allowed_in_tracking(name) for name in found)


STAFF_WORDS = re.compile(r"\bis_staff\b|\bis_superuser\b")


def test_only_permissions_decides_staff_or_owner():
    sources = [
        path
        for path in (ROOT / "taskboard").rglob("*.py")
        if "migrations" not in path.parts and path.name != "permissions.py"
    ]
    sources += list((ROOT / "templates").rglob("*.html"))
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sources
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if STAFF_WORDS.search(line)
    ]
    assert not offenders, f"decide staff-or-owner through taskboard.permissions: {offenders}"
