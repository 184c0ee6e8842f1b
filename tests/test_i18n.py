"""Spanish (the default) and English catalogs are complete and compiled."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

LOCALE = Path(settings.BASE_DIR) / "locale"
ENTRY = re.compile(
    r'^msgid "(?P<id>(?:[^"\\]|\\.)*)"\nmsgstr "(?P<str>(?:[^"\\]|\\.)*)"$', re.MULTILINE
)


def entries(language: str) -> list[tuple[str, str]]:
    text = (LOCALE / language / "LC_MESSAGES" / "django.po").read_text(encoding="utf-8")
    return [(m["id"], m["str"]) for m in ENTRY.finditer(text) if m["id"]]


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
            unescaped = msgid.encode().decode("unicode_escape").encode("latin-1").decode()
            expected = msgstr.encode().decode("unicode_escape").encode("latin-1").decode()
            assert translation.gettext(unescaped) == expected, msgid


def test_spanish_is_the_default():
    assert settings.LANGUAGE_CODE == "es"
