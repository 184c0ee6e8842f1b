"""Spanish (the default) and English catalogs are complete and compiled."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
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


# --- Every translatable string of the code is in the Spanish catalog -----------------------
# What `makemessages` would extract, without GNU gettext: templates through Django's own
# templatize() (what makemessages hands to xgettext), Python through ast, with makemessages'
# keywords. A string added to a template or a view and not translated fails here, by name.

ROOT = Path(settings.BASE_DIR)
PYTHON_SOURCES = ("taskboard", "sgm")
# name: (index of the context, of the singular, of the plural): xgettext's Python defaults
# plus the --keyword options makemessages adds.
KEYWORDS: dict[str, tuple[int | None, int, int | None]] = {
    "_": (None, 0, None),
    "gettext": (None, 0, None),
    "ugettext": (None, 0, None),
    "gettext_lazy": (None, 0, None),
    "gettext_noop": (None, 0, None),
    "dgettext": (None, 1, None),
    "ngettext": (None, 0, 1),
    "ungettext": (None, 0, 1),
    "ngettext_lazy": (None, 0, 1),
    "dngettext": (None, 1, 2),
    "pgettext": (0, 1, None),
    "pgettext_lazy": (0, 1, None),
    "npgettext": (0, 1, 2),
    "npgettext_lazy": (0, 1, 2),
}
STRING = r"""[uUrRbB]*(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
TEMPLATIZED_CALL = re.compile(rf"\b(\w+)\(\s*({STRING}(?:\s*,\s*{STRING})*)")


@dataclass(frozen=True)
class Message:
    context: str | None
    msgid: str
    plural: str | None
    where: str


def _message(name: str, strings: list[str], where: str) -> Message | None:
    context_at, singular_at, plural_at = KEYWORDS[name]
    needed = max(i for i in (context_at, singular_at, plural_at) if i is not None)
    if len(strings) <= needed or not strings[singular_at]:
        return None  # not all literal (xgettext skips those too)
    return Message(
        context=strings[context_at] if context_at is not None else None,
        msgid=strings[singular_at],
        plural=strings[plural_at] if plural_at is not None else None,
        where=where,
    )


def template_messages(path: Path) -> list[Message]:
    from django.utils.translation.template import templatize

    where = str(path.relative_to(ROOT))
    code = templatize(path.read_text(encoding="utf-8"), origin=where)
    found = []
    for match in TEMPLATIZED_CALL.finditer(code):
        if match[1] not in KEYWORDS:
            continue
        strings = [ast.literal_eval(s) for s in re.findall(STRING, match[2])]
        message = _message(match[1], strings, where)
        if message:
            found.append(message)
    return found


def python_messages(path: Path) -> list[Message]:
    where = str(path.relative_to(ROOT))
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=where)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name not in KEYWORDS:
            continue
        # Literal arguments up to the first that is not one (as xgettext reads them).
        strings: list[str] = []
        for argument in node.args:
            if not (isinstance(argument, ast.Constant) and isinstance(argument.value, str)):
                break
            strings.append(argument.value)
        message = _message(name, strings, f"{where}:{node.lineno}")
        if message:
            found.append(message)
    return found


def source_messages() -> list[Message]:
    found = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        found += template_messages(path)
    for package in PYTHON_SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found += python_messages(path)
    return found


@dataclass
class Entry:
    context: str | None = None
    msgid: str = ""
    plural: str | None = None
    msgstrs: dict[int, str] = field(default_factory=dict)
    fuzzy: bool = False


def catalog(language: str) -> tuple[dict[tuple[str | None, str], Entry], int]:
    """The .po file's live entries by (context, msgid), and its number of plural forms."""
    text = (LOCALE / language / "LC_MESSAGES" / "django.po").read_text(encoding="utf-8")
    entries: dict[tuple[str | None, str], Entry] = {}
    nplurals = 2
    for block in re.split(r"\n\s*\n", text):
        entry = Entry()
        current: tuple[str, int] | None = None
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("#,") and "fuzzy" in line:
                entry.fuzzy = True
            if not line or line.startswith("#"):
                continue  # comments, and obsolete (#~) entries: as good as missing
            keyword, _space, rest = line.partition(" ")
            if line.startswith('"'):
                value, rest = ast.literal_eval(line), ""
            else:
                value = ast.literal_eval(rest)
                plural_form = re.fullmatch(r"msgstr\[(\d+)\]", keyword)
                current = ("msgstr", int(plural_form[1])) if plural_form else (keyword, 0)
            assert current is not None, f"{language}: a string before any keyword: {line}"
            name, index = current
            if name == "msgctxt":
                entry.context = (entry.context or "") + value
            elif name == "msgid":
                entry.msgid += value
            elif name == "msgid_plural":
                entry.plural = (entry.plural or "") + value
            elif name == "msgstr":
                entry.msgstrs[index] = entry.msgstrs.get(index, "") + value
        if entry.msgid == "" and entry.context is None:
            forms = re.search(r"nplurals=(\d+)", entry.msgstrs.get(0, ""))
            nplurals = int(forms[1]) if forms else nplurals
        elif entry.msgid:
            entries[(entry.context, entry.msgid)] = entry
    return entries, nplurals


def untranslated(messages: list[Message], language: str) -> list[str]:
    """What is wrong with each message in the language's catalog, one line each."""
    entries, nplurals = catalog(language)
    problems: dict[tuple[str | None, str], str] = {}
    for message in messages:
        key = (message.context, message.msgid)
        entry = entries.get(key)
        shown = repr(message.msgid) + (f" (context {message.context!r})" if message.context else "")
        if entry is None:
            problem = "missing"
        elif entry.fuzzy:
            problem = "fuzzy"
        elif message.plural is not None and sorted(entry.msgstrs) != list(range(nplurals)):
            problem = f"needs msgstr[0]…msgstr[{nplurals - 1}], has {sorted(entry.msgstrs)}"
        elif message.plural is not None and entry.plural != message.plural:
            problem = f"plural is {entry.plural!r}, the code says {message.plural!r}"
        elif not all(entry.msgstrs.values()) or not entry.msgstrs:
            problem = "empty msgstr"
        else:
            continue
        problems.setdefault(key, f"{problem}: {shown}  [{message.where}]")
    return sorted(problems.values())


def test_extraction_finds_template_and_python_strings():
    """The extractor itself: singulars, plurals and contexts from both kinds of source."""
    messages = source_messages()
    msgids = {m.msgid for m in messages}
    assert "Log in" in msgids  # {% translate %} in registration/login.html
    assert "Only staff may see module statistics." in msgids  # gettext in a view
    plurals = [m for m in messages if m.plural]
    assert any("unread in all." in m.msgid for m in plurals)  # {% blocktranslate count %}
    assert any(m.where.endswith(".py") or ".py:" in m.where for m in plurals)
    assert len(messages) > 100


def test_every_source_string_is_translated_in_spanish():
    problems = untranslated(source_messages(), "es")
    assert not problems, (
        f"{len(problems)} strings of the code are not (fully) translated in "
        "locale/es/LC_MESSAGES/django.po (run makemessages -l es, translate, compilemessages):\n"
        + "\n".join(problems)
    )
