"""Spanish (the default) and English catalogs are complete and compiled."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

LOCALE = Path(settings.BASE_DIR) / "locale"
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _unquote(lines: list[str]) -> str:
    text = "".join(QUOTED.search(line).group(1) for line in lines)  # type: ignore[union-attr]
    return text.encode().decode("unicode_escape").encode("latin-1").decode()


def entries(language: str) -> list[tuple[str, str]]:
    """(msgid, msgstr) of every entry but the header; continuation lines joined."""
    text = (LOCALE / language / "LC_MESSAGES" / "django.po").read_text(encoding="utf-8")
    found = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith("#")]
        fields: dict[str, list[str]] = {}
        current = None
        for line in lines:
            if line.startswith(("msgid ", "msgstr ", "msgid_plural ", "msgstr[")):
                current = line.split(" ", 1)[0]
                fields[current] = [line]
            elif line.startswith('"') and current:
                fields[current].append(line)
        if "msgid" in fields and "msgstr" in fields:
            msgid = _unquote(fields["msgid"])
            if msgid:
                found.append((msgid, _unquote(fields["msgstr"])))
    return found


@pytest.mark.parametrize("language", ["es", "en"])
def test_catalog_is_complete(language):
    found = entries(language)
    assert len(found) > 40
    assert [msgid for msgid, msgstr in found if not msgstr] == []
    assert "#, fuzzy" not in (LOCALE / language / "LC_MESSAGES" / "django.po").read_text()


@pytest.mark.parametrize("language", ["es", "en"])
def test_compiled_catalog_matches_its_source(language):
    with translation.override(language):
        for msgid, msgstr in entries(language):
            assert translation.gettext(msgid) == msgstr, msgid


def test_spanish_is_the_default():
    assert settings.LANGUAGE_CODE == "es"
