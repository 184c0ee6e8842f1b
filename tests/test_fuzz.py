"""Fuzz every route: taskboard's HTML surface (taskboard/urls.py), its JSON API
(taskboard/api/urls.py) and the SGM pages, as the three kinds of user (anonymous, plain,
staff), with malformed parameters, every method, hostile ids and odd headers. Not one
response may be a 5xx: bad input is a 4xx with a message, never a 500.

Bounded: a few thousand requests, through Django's test client (the whole stack below the
socket: middleware, CSRF off as in the test client, views, templates, PostgreSQL)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from taskboard.converters import id_to_url
from taskboard.models import TaskExecution, TaskNotification, TaskState, TaskTemplate
from tests.factories import make_execution, make_user

# --- What is thrown at them -----------------------------------------------------------------

BAD_VALUES: list[str] = [
    "10000000000000000000",
    "9" * 400,
    "-1",
    "-99999999999999999999",
    "0",
    "NaN",
    "-inf",
    "1e308",
    "٣",  # Arabic-Indic digit: str.isdigit() says yes, a database column says no
    "²",
    "1_000",
    "1.5",
    "nul\x00byte",
    "x" * 5000,
    "\u202etxt.exe",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%00%ZZ",
    "",
]

# Every name a view of ours reads from a query string or a form.
PARAM_NAMES = [
    "page",
    "per_page",
    "sort",
    "module",
    "state",
    "owner",
    "user",
    "q",
    "limit",
    "offset",
    "mine",
    "since",
    "next",
    "action",
    "scope",
    "ids",
    "low",
    "high",
    "terminate",
    "periodo_id",
    "empleados",
    "pausa",
    "paginas",
    "on_success",
    "email_failures",
]

HOSTILE_IDS = [
    "fz/slash",
    "fz%2Fenc",
    "fz 100%",
    "fz?q#h",
    "fz" + "x" * 253,
    "fz-ñ-日本-🙂",
    "fz\tctl\x07\x1b\x7f",
    "..",
    "~2F",
    "bulk",
]
UNKNOWN_IDS = ["y" * 300, "nope/nope", "%", "🙂" * 100]

HEADER_SETS: list[dict[str, str]] = [
    {"HX-Request": "true"},
    {"HX-Request": "true", "HX-Target": "\x00", "HX-Current-URL": "javascript:1"},
    {"Accept": "application/json"},
    {"Accept": "*/*;q=NaN, text/html;q=1e999, ;;;"},
    {"Accept-Language": "xx-ÿÿ;q=2, *;q=-1"},
]

METHODS = ["get", "post", "put", "delete", "head"]


# --- The routes -----------------------------------------------------------------------------

ROUTE_PREFIXES = ("tasks/", "api/tasks/", "nomina/")


@dataclass(frozen=True)
class Route:
    template: str  # with {name} for each path argument
    arguments: tuple[tuple[str, str], ...]  # (name, converter)


_ARG = re.compile(r"<(?:(?P<conv>\w+):)?(?P<name>\w+)>")


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            text = prefix + str(entry.pattern)
            if text.startswith("^") or "(?P<" in text:  # the API's catch-all regex
                text = text.replace("^", "").replace("(?P<path>.*)$", "{path}")
                yield Route("/" + text, (("path", "path"),))
                continue
            arguments = tuple((m["name"], m["conv"] or "str") for m in _ARG.finditer(text))
            yield Route("/" + _ARG.sub(lambda m: "{" + m["name"] + "}", text), arguments)


def our_routes() -> list[Route]:
    routes = [
        r for r in _walk(get_resolver().url_patterns) if r.template[1:].startswith(ROUTE_PREFIXES)
    ]
    routes.append(Route("/", ()))
    routes.append(Route("/healthz", ()))
    return routes


# --- The run --------------------------------------------------------------------------------


@dataclass
class World:
    ids: list[str]
    notification: int
    template_key: str


def _world(owner: Any) -> World:
    states = list(TaskState.values)
    rows = [
        make_execution(
            task_id=task_id, user=owner, module=f"m/{index % 3}", state=states[index % len(states)]
        )
        for index, task_id in enumerate(HOSTILE_IDS)
    ]
    # A parent with children, a retried row, a notification: the detail's other panels.
    for child in rows[1:4]:
        TaskExecution.objects.filter(pk=child.pk).update(parent_task_id=rows[0].task_id)
    notification = TaskNotification.objects.create(user=owner, execution=rows[0], state="FAILURE")
    template = TaskTemplate.objects.order_by("key").first()
    return World(
        ids=[r.task_id for r in rows],
        notification=notification.pk,
        template_key=template.key if template else "nomina.consolidar",
    )


def _fillings(route: Route, world: World) -> Iterator[dict[str, str]]:
    """Path arguments for route: a good one first, then hostile ones."""
    choices: list[list[str]] = []
    for name, converter in route.arguments:
        if converter == "anyid" and name == "task_id":
            choices.append([id_to_url(i) for i in world.ids + UNKNOWN_IDS])
        elif converter == "anyid":
            good = world.template_key if name == "key" else "nomina"
            choices.append([id_to_url(v) for v in (good, "m/1", "y" * 300, "~", "٣")])
        elif converter == "int":
            choices.append([str(world.notification), "0", "99999999999999999999", "9" * 400])
        elif converter == "slug":
            choices.append(["consolidacion", "exportacion", "x" * 300, "nope"])
        else:  # str, path
            choices.append(["x", "ñ/🙂/..", "y" * 300])
    for values in itertools.product(*choices):
        yield dict(zip((name for name, _ in route.arguments), values, strict=True))


def _requests(route: Route, world: World) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, url, client keyword arguments) for one route."""
    fillings = list(_fillings(route, world))
    base = route.template.format(**fillings[0])
    # Every method, bare.
    for method in METHODS:
        yield method, base, {}
    # Every bad value in every parameter at once, by GET and by form POST; then as lists.
    for value in BAD_VALUES:
        data = dict.fromkeys(PARAM_NAMES, value)
        yield "get", base, {"data": data}
        yield "post", base, {"data": data}
    listed = dict.fromkeys(PARAM_NAMES, BAD_VALUES[:6])
    yield "get", base, {"data": listed}
    yield "post", base, {"data": listed}
    # Headers; a body that is not what it says.
    for headers in HEADER_SETS:
        yield "get", base, {"headers": headers}
    for body, content_type in (
        (b"{bad json", "application/json"),
        (b'{"limit": 1e999, "ids": [null]}', "application/json"),
        (b"next=%00&ids=\xff\xfe&page=%ZZ", "application/x-www-form-urlencoded"),
        (b"--x\r\n", "multipart/form-data; boundary="),
        (b"a=1", "text/plain; charset=nope"),
        (b"a=\xe9", "application/x-www-form-urlencoded; charset=nope"),
    ):
        yield "raw", base, {"data": body, "content_type": content_type}
    # Hostile path arguments, read and acted on.
    for filling in fillings[1:]:
        url = route.template.format(**filling)
        yield "get", url, {"headers": {"HX-Request": "true"}}
        yield "post", url, {}


def _send(client: Client, method: str, url: str, options: dict[str, Any]) -> int:
    if method == "raw":  # the body as bytes, whatever its content type claims
        return int(client.generic("POST", url, **options).status_code)
    if method in ("put", "delete") and "data" in options and isinstance(options["data"], dict):
        options = {**options, "data": "&".join(f"{k}=v" for k in options["data"])}
    return int(getattr(client, method)(url, **options).status_code)


def test_no_route_answers_5xx(db, settings, celery_on_test_redis):
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    plain = make_user("fuzz-plain")
    staff = make_user("fuzz-staff", staff=True)
    world = _world(plain)
    routes = our_routes()
    assert len(routes) >= 25, [r.template for r in routes]
    failures: list[str] = []
    sent = 0
    for who in (None, plain, staff):
        client = Client(raise_request_exception=False)
        if who is not None:
            client.force_login(who)
        for route in routes:
            for method, url, options in _requests(route, world):
                try:
                    status = _send(client, method, url, options)
                except Exception as error:  # the client itself could not send it
                    failures.append(f"{who} {method.upper()} {url[:120]!r}: {error!r}")
                    continue
                sent += 1
                if status >= 500:
                    failures.append(
                        f"{who} {method.upper()} {url[:120]!r} {str(options)[:160]}: {status}"
                    )
    assert sent >= 2000
    assert not failures, f"{len(failures)} of {sent}:\n" + "\n".join(failures[:60])
