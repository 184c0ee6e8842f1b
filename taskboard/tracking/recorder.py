"""How tracking writes reach the database.

Every write is a single conditional UPDATE keyed by the task id, whose WHERE clause carries
the state-transition rule (see models.ALLOWED_FROM): no read before write, duplicates and
out-of-order writes are no-ops, terminal states are final. Only when the row does not exist
yet is it created, as PENDING, and the UPDATE repeated.

Workers and scripts write behind: each process keeps a buffer of pending writes that one
background thread flushes, a batch per transaction. A task's writes are merged while they
wait (STARTED absorbed by the final state of a short task, progress coalesced to a bounded
number of writes per second), so a short task costs one row update, batched with others.
On PostgreSQL a batch's writes of one shape go as one UPDATE over rows of values sent as one
JSON parameter, and its new rows as one INSERT: one plan and one execution per burst
instead of one per row.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
    transaction,
)
from django.db.models import DateTimeField, Field
from django.utils import timezone

from taskboard.conf import conf
from taskboard.models import TERMINAL_STATES, TaskExecution, TaskState, allowed_from
from taskboard.signals import execution_changed, executions_finished_send
from taskboard.tracking import spill
from taskboard.tracking.forksafe import database_work
from taskboard.tracking.stamps import stamp_bump

logger = logging.getLogger("taskboard.tracking")

Lookup = tuple[str, Any]  # ("task_id", "…") or ("pk", 42)
CreateFields = Callable[[], dict[str, Any]]
IDLE_SECONDS = 2.0  # the flushing thread lets go of its connection after this long idle
RECYCLE_SECONDS = 30.0  # how often the thread checks its connection (CONN_MAX_AGE, health)
FORGET_SECONDS = 30.0  # rate-limit memory of tasks that wrote nothing for this long goes
PUBLISH_SECONDS = 0.5  # while writes wait, figures read by another process are this fresh


@dataclass
class Write:
    """One state transition (or progress update) of one execution."""

    lookup: Lookup
    state: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    # Extra conditions of the transition, e.g. a RETRY must not overtake a newer attempt.
    conditions: dict[str, Any] = field(default_factory=dict)
    # Narrower than the state rule: apply only from these states (None: as the rule allows).
    from_states: frozenset[str] | None = None
    # Identity fields to create the row with when it is missing (None: never create).
    create: CreateFields | None = None
    # Asked at flush time: is the write still worth making? (None: always.)
    still_needed: Callable[[], bool] | None = None

    def merged_with(self, newer: Write) -> Write:
        if self.state in TERMINAL_STATES:
            return self  # terminal is final in the buffer too: a late write cannot undo it
        return replace(
            newer,
            state=newer.state or self.state,
            fields={**self.fields, **newer.fields},
            create=newer.create or self.create,
        )

    def to_record(self) -> dict[str, Any]:
        """The write as JSON-able data, for a spill file: create() is evaluated now, and
        still_needed is left out (asked before spilling; replayed, the rule guards it)."""
        return {
            "lookup": list(self.lookup),
            "state": self.state,
            "fields": self.fields,
            "conditions": self.conditions,
            "from_states": None if self.from_states is None else sorted(self.from_states),
            "create": None if self.create is None else self.create(),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Write:
        created = record.get("create")
        from_states = record.get("from_states")
        return cls(
            lookup=(record["lookup"][0], record["lookup"][1]),
            state=record.get("state"),
            fields=_restored(record.get("fields") or {}),
            conditions={
                name: _restored_value(_CONDITIONS[name][0], value)
                for name, value in (record.get("conditions") or {}).items()
            },
            from_states=None if from_states is None else frozenset(from_states),
            create=None if created is None else functools.partial(_restored, created),
        )


def _restored(values: dict[str, Any]) -> dict[str, Any]:
    """Field values read back from JSON (datetimes were written as ISO 8601 text)."""
    return {name: _restored_value(name, value) for name, value in values.items()}


def _restored_value(name: str, value: Any) -> Any:
    if isinstance(value, str) and isinstance(_field(name), DateTimeField):
        return datetime.fromisoformat(value)
    return value


@contextmanager
def isolated() -> Iterator[None]:
    # Inside a caller's transaction a failing tracking statement must not poison it.
    with transaction.atomic() if connection.in_atomic_block else nullcontext():
        yield


def apply(write: Write) -> bool:
    """Write one transition now. True when a row was changed."""
    with isolated():
        changed = _update(write)
    if changed:
        _announce_all([write])
    return changed


def apply_many(writes: list[Write]) -> list[Write]:
    """Write these transitions now, in one transaction; the ones that changed a row. They
    are announced (execution_changed, executions_finished) as the buffer's batches are."""
    if not writes:
        return []
    with transaction.atomic():
        changed = _update_many(writes)
    _announce_all(changed)
    return changed


def _update(write: Write) -> bool:
    sql, params = _update_statement(write)
    return _execute_many(sql, [params])[0] or _create_and_retry(write, sql, params)


def _create_and_retry(write: Write, sql: str, params: list[Any]) -> bool:
    """The UPDATE changed nothing: if the row may be missing, create it as PENDING (a no-op
    when it exists) and apply the write again."""
    if write.create is None or write.lookup[0] != "task_id":
        return False
    _insert([{**write.create(), "task_id": write.lookup[1], "state": TaskState.PENDING}])
    return _execute_many(sql, [params])[0]


def _update_many(writes: list[Write]) -> list[Write]:
    """Apply a batch of writes (in the caller's transaction); the ones that changed a row."""
    by_shape: dict[_Shape, list[tuple[Write, list[Any]]]] = {}
    for write in writes:
        shape, params = _update_shape(write)
        by_shape.setdefault(shape, []).append((write, params))
    changed: list[Write] = []
    missed: list[tuple[Write, str, list[Any]]] = []
    for shape, items in by_shape.items():
        sql = _statement_for(*shape)[0]
        hits = _update_group(shape, [params for _, params in items])
        for (write, params), hit in zip(items, hits, strict=True):
            if hit:
                changed.append(write)
            else:
                missed.append((write, sql, params))
    # A row that was not there yet (or a write the rule refused): one by one, rare.
    changed.extend(write for write, sql, params in missed if _create_and_retry(write, sql, params))
    return changed


def _update_group(shape: _Shape, params_list: list[list[Any]]) -> list[bool]:
    """Writes of one shape (same columns, same conditions): which ones changed a row. On
    PostgreSQL a burst is one statement over the rows of values, sent as one JSON
    parameter (one plan, one execution instead of one per row: a third of the server's
    CPU; and JSON costs the client a third of what arrays do); elsewhere, one by one."""
    keys = [params[_key_position(shape)] for params in params_list]
    burst = (
        connection.vendor == "postgresql"
        and len(params_list) > 1
        # The same row twice in one statement would be updated once: not merged here.
        and len(set(keys)) == len(keys)
    )
    values = _as_json(params_list) if burst else None
    if values is None:
        return _execute_many(_statement_for(*shape)[0], params_list)
    import psycopg

    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_burst_statement_for(*shape), [values])
        changed = {row[0] for row in cursor.fetchall()}
    return [key in changed for key in keys]


def _as_json(rows: list[list[Any]]) -> str | None:
    """Rows of database values as one JSON text (a datetime as ISO 8601, a JSON column's
    value as its own JSON text); None when a value has no exact JSON form (NaN, an
    unknown type): the caller then sends the rows one by one."""
    try:
        return json.dumps(rows, ensure_ascii=False, allow_nan=False, default=_json_default)
    except (TypeError, ValueError):
        return None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.isoformat()
    from psycopg.types.json import Jsonb

    if isinstance(value, Jsonb):  # what Django makes of a JSONField's value
        return (value.dumps or json.dumps)(value.obj)  # None: psycopg's default, json's
    raise TypeError(f"no exact JSON form for {type(value).__name__}")


def _unbounded_type(field: Field[Any, Any]) -> str:
    """The field's type to cast a value to, without a length: a cast to varchar(n) would cut
    a longer value silently, where storing it fails (as a row by row write does)."""
    kind = str(field.db_type(connection))
    return "text" if kind.startswith("varchar") else kind


def _json_rows(names: list[str], fields: list[Field[Any, Any]]) -> str:
    """The rows of a JSON parameter (an array of arrays) as a table v with these columns,
    each cast to its field's type (a JSON column from its JSON text)."""
    columns = ", ".join(
        f"(r->>{position})::{_unbounded_type(field)} AS {name}"
        for position, (name, field) in enumerate(zip(names, fields, strict=True))
    )
    return f"(SELECT {columns} FROM jsonb_array_elements(%s::jsonb) AS r) AS v"


def _execute_many(sql: str, params_list: list[list[Any]], *, returning: bool = True) -> list[bool]:
    """Run one statement with many parameter sets: which ones changed a row (when asked)."""
    if connection.vendor != "postgresql" or len(params_list) == 1:
        with connection.cursor() as cursor:
            hits = []
            for params in params_list:
                cursor.execute(sql, params)
                hits.append(cursor.rowcount > 0)
            return hits
    # PostgreSQL: one pipelined round trip, and a server-side-bound statement that the
    # server parses and plans once (Django's own cursors bind on the client).
    import psycopg

    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        if not returning:
            cursor.executemany(sql, params_list)
            return []
        cursor.executemany(f"{sql} RETURNING 1", params_list, returning=True)
        hits = [cursor.rowcount > 0]
        while cursor.nextset():
            hits.append(cursor.rowcount > 0)
    return hits


_CONDITIONS = {
    "retries__lte": ("retries", "<="),
    "worker": ("worker", "="),
    "started_at__lt": ("started_at", "<"),
    # A worker's own final state of a task it ran: as the rule allows, and from LOST (an
    # inference) only when the row names this worker (models.SAME_WORKER_ONLY).
    "worker_if_lost": ("worker", "="),
}


@functools.cache
def _field(name: str) -> Field[Any, Any]:
    return cast("Field[Any, Any]", TaskExecution._meta.get_field(name))


def _db_value(field: Field[Any, Any], value: Any, vendor: str) -> Any:
    """field.get_db_prep_save(value), skipped for a plain value it would return unchanged
    (a str for a text column, an int for an integer one, an aware datetime on PostgreSQL):
    most of a write's values, and the hot path of every flush. (vendor: the connection's,
    asked once per batch by the caller.)"""
    plain = _plain_by_field.get((id(field), vendor))
    if plain is None:
        plain = _plain_by_field[(id(field), vendor)] = _plain_types(field, vendor)
    naive = isinstance(value, datetime) and value.tzinfo is None
    if plain and (value is None or type(value) in plain) and not naive:
        return value
    return field.get_db_prep_save(value, connection)


_TEXT = frozenset({"CharField", "TextField"})
_INTEGER = frozenset(
    {"IntegerField", "PositiveIntegerField", "PositiveSmallIntegerField", "SmallIntegerField"}
)


# By the field's id: a model field lives as long as the process, and its own hash is slow.
_plain_by_field: dict[tuple[int, str], tuple[type, ...]] = {}


def _plain_types(field: Field[Any, Any], vendor: str) -> tuple[type, ...]:
    """The value types this field's get_db_prep_save returns as they are (none: always ask)."""
    kind = field.get_internal_type()
    if field.choices or kind not in _TEXT | _INTEGER | {"FloatField", "DateTimeField"}:
        return ()
    if kind in _TEXT:
        return (str,)
    if kind in _INTEGER:
        return (int,)
    if kind == "FloatField":
        return (float,)
    # PostgreSQL takes an aware datetime as it is (SQLite wants it as naive UTC text).
    return (datetime,) if vendor == "postgresql" else ()


def _column(field: Field[Any, Any]) -> str:
    return connection.ops.quote_name(field.column or field.name)


# What makes two writes the same statement: key, state, columns, conditions, from_states.
_Shape = tuple[str, str | None, tuple[str, ...], tuple[str, ...], frozenset[str] | None]


def _update_statement(write: Write) -> tuple[str, list[Any]]:
    """The conditional UPDATE of one write, as SQL (the hot path: no ORM compilation)."""
    shape, params = _update_shape(write)
    return _statement_for(*shape)[0], params


def _update_shape(write: Write) -> tuple[_Shape, list[Any]]:
    """The write's statement shape and its parameters: the new values (then started_at for
    a PROGRESS write that does not set it), the key, the conditions' values."""
    now = timezone.now()
    values: dict[str, Any] = {**write.fields, "updated_at": now}
    if write.state is not None:
        values["state"] = write.state
    if write.state == TaskState.LOST:
        values.setdefault("lost_at", now)  # kept if the worker's own final state comes later
    fill_started = write.state == TaskState.PROGRESS and "started_at" not in values
    key, lookup = write.lookup
    shape = (key, write.state, tuple(values), tuple(write.conditions), write.from_states)
    fields = _statement_for(*shape)[1]
    vendor = connection.vendor
    params = [
        _db_value(field, value, vendor)
        for field, value in zip(fields, values.values(), strict=True)
    ]
    if fill_started:
        params.append(_db_value(_field("started_at"), now, vendor))
    params.append(_field("id" if key == "pk" else key).get_db_prep_value(lookup, connection))
    params.extend(
        _field(_CONDITIONS[name][0]).get_db_prep_value(value, connection)
        for name, value in write.conditions.items()
    )
    return shape, params


def _fills_started(state: str | None, names: tuple[str, ...]) -> bool:
    return state == TaskState.PROGRESS and "started_at" not in names


def _key_position(shape: _Shape) -> int:
    """Where the key is among a write's parameters (after the values)."""
    _, state, names, _, _ = shape
    return len(names) + _fills_started(state, names)


@functools.lru_cache(maxsize=256)
def _statement_for(
    key: str,
    state: str | None,
    names: tuple[str, ...],
    conditions: tuple[str, ...],
    from_states: frozenset[str] | None = None,
) -> tuple[str, list[Field[Any, Any]]]:
    fields = [_field(name) for name in names]
    assignments = [f"{_column(field)} = %s" for field in fields]
    if _fills_started(state, names):
        started = _column(_field("started_at"))
        assignments.append(f"{started} = COALESCE({started}, %s)")
    where = [f"{_column(_key_field(key))} = %s", *_rule(state, conditions, from_states)]
    where += [_condition(name, "%s") for name in conditions]
    table = connection.ops.quote_name(TaskExecution._meta.db_table)
    sql = f"UPDATE {table} SET {', '.join(assignments)} WHERE {' AND '.join(where)}"
    return sql, fields


def _key_field(key: str) -> Field[Any, Any]:
    return _field("id" if key == "pk" else key)


def _rule(
    state: str | None, conditions: tuple[str, ...], from_states: frozenset[str] | None
) -> list[str]:
    """The state-transition rule of a write to state, as a WHERE test (none without a state)."""
    if state is None:
        return []
    # The states are our own constants (TaskState values), written into the statement.
    same_worker = "worker" in conditions or "worker_if_lost" in conditions
    rule = allowed_from(state, same_worker=same_worker)
    permitted = rule if from_states is None else rule & from_states
    allowed = ", ".join(f"'{value}'" for value in sorted(permitted))
    return [f"{_column(_field('state'))} IN ({allowed})"]


def _condition(name: str, value: str, table: str = "") -> str:
    """The WHERE test of one extra condition, against value (a placeholder or a column)."""
    column, operator = _CONDITIONS[name]
    test = f"{table}{_column(_field(column))} {operator} {value}"
    if name == "worker_if_lost":
        test = f"({test} OR {table}{_column(_field('state'))} <> '{TaskState.LOST}')"
    return test


@functools.lru_cache(maxsize=256)
def _burst_statement_for(
    key: str,
    state: str | None,
    names: tuple[str, ...],
    conditions: tuple[str, ...],
    from_states: frozenset[str] | None = None,
) -> str:
    """The UPDATE of many writes of one shape (PostgreSQL): the parameters of
    _statement_for, a row per write in one JSON parameter, joined on the key; it returns
    the keys of the rows it changed."""
    fields = [_field(name) for name in names]
    typed = [*fields]
    if _fills_started(state, names):
        typed.append(_field("started_at"))
    typed.append(_key_field(key))
    typed += [_field(_CONDITIONS[name][0]) for name in conditions]
    values = [f"p{i}" for i in range(len(typed))]
    assignments = [f"{_column(field)} = v.p{i}" for i, field in enumerate(fields)]
    if _fills_started(state, names):
        started = _column(_field("started_at"))
        assignments.append(f"{started} = COALESCE(t.{started}, v.p{len(fields)})")
    key_column = _column(_key_field(key))
    where = [f"t.{key_column} = v.p{len(names) + _fills_started(state, names)}"]
    where += [f"t.{test}" for test in _rule(state, conditions, from_states)]
    first_condition = len(typed) - len(conditions)
    where += [
        _condition(name, f"v.p{first_condition + i}", table="t.")
        for i, name in enumerate(conditions)
    ]
    table = connection.ops.quote_name(TaskExecution._meta.db_table)
    return (
        f"UPDATE {table} AS t SET {', '.join(assignments)} FROM {_json_rows(values, typed)} "
        f"WHERE {' AND '.join(where)} RETURNING t.{key_column}"
    )


def _announce_all(changed: list[Write], *, inserted: bool = False) -> None:
    """execution_changed for each write that changed a row, then one executions_finished;
    and, when anything was written, one bump of the change stamp (polls then re-render)."""
    if changed or inserted:
        stamp_bump()
    for write in changed:
        _announce(write)
    _announce_finished(changed)


def _announce(write: Write) -> None:
    execution_changed.send(
        sender=TaskExecution, lookup=write.lookup, state=write.state, fields=write.fields
    )


def _announce_finished(changed: list[Write]) -> None:
    """One executions_finished for the writes that made a row final (a changed row whose
    new state is terminal: the rule let it in from an active state, so only once)."""
    executions_finished_send([w.lookup for w in changed if w.state in TERMINAL_STATES])


Row = dict[str, Any]  # field name -> value of a TaskExecution to create


def insert(rows: list[Row]) -> None:
    """Create rows that do not exist yet (a PENDING row per published task), now. When the
    database is away the write buffer takes them instead (held, written once it answers)."""
    try:
        with isolated():
            _insert(rows)
    except Exception as exc:
        if not _database_away(exc):
            raise
        _close_quietly()
        for row in rows:
            buffer.insert(row, delay=0.0)
    else:
        stamp_bump()


def _insert(rows: list[Row]) -> None:
    # Plain SQL: model instances and bulk_create cost more than the insert itself here.
    fields = _insertable_fields()
    if connection.vendor == "postgresql" and len(rows) > 1 and _insert_burst(rows):
        return
    defaults = _insert_defaults()
    vendor = connection.vendor
    params_list = [
        [
            _db_value(field, row[field.attname], vendor) if field.attname in row else default
            for field, default in zip(fields, defaults, strict=True)
        ]
        for row in rows
    ]
    _execute_many(_insert_statement(), params_list, returning=False)


def _insert_defaults() -> list[Any]:
    return [f.get_db_prep_save(f.get_default(), connection) for f in _insertable_fields()]


def _insert_burst(rows: list[Row]) -> bool:
    """Many rows in one INSERT (PostgreSQL), their values in one JSON parameter: one plan
    and one execution for the burst. A column no row sets is sent once, as its default.
    False when a value has no exact JSON form (the caller inserts row by row)."""
    import psycopg

    fields = _insertable_fields()
    given = tuple(i for i, field in enumerate(fields) if any(field.attname in row for row in rows))
    defaults = _insert_defaults()
    scalars = [defaults[i] for i in range(len(fields)) if i not in given]
    vendor = connection.vendor
    values = _as_json(
        [
            [
                _db_value(fields[i], row[fields[i].attname], vendor)
                if fields[i].attname in row
                else defaults[i]
                for i in given
            ]
            for row in rows
        ]
    )
    if values is None:
        return False
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_insert_burst_statement(given), [*scalars, values])
    return True


@functools.lru_cache(maxsize=64)
def _insert_burst_statement(given: tuple[int, ...]) -> str:
    fields = _insertable_fields()
    columns = ", ".join(_column(f) for f in fields)
    chosen = [
        f"v.p{i}" if i in given else f"%s::{field.db_type(connection)}"
        for i, field in enumerate(fields)
    ]
    source = _json_rows([f"p{i}" for i in given], [fields[i] for i in given])
    table = connection.ops.quote_name(TaskExecution._meta.db_table)
    return (
        f"INSERT INTO {table} ({columns}) SELECT {', '.join(chosen)} "
        f"FROM {source} ON CONFLICT DO NOTHING"
    )


@functools.cache
def _insert_statement() -> str:
    fields = _insertable_fields()
    columns = ", ".join(_column(f) for f in fields)
    values = ", ".join(["%s"] * len(fields))
    table = connection.ops.quote_name(TaskExecution._meta.db_table)
    return f"INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING"


@functools.cache
def _insertable_fields() -> list[Field[Any, Any]]:
    return [f for f in TaskExecution._meta.concrete_fields if not f.primary_key]


@dataclass
class _Pending:
    write: Write
    due: float
    since: float  # when its first write was queued (monotonic): the age of the figure "lag"


@dataclass
class _Batch:
    inserts: list[Row]
    writes: list[Write]
    spill: bool = False  # the database is away and the buffer full: to a spill file


COUNTERS = ("written", "retried", "spilled", "replayed", "dropped", "outages")


class WriteBuffer:
    """Per-process buffer of deferred writes with one background flushing thread.

    While the database is away nothing is dropped: what a batch could not write is held
    (merged per task as before, rows before their updates) and tried again with backoff
    (TASKBOARD_BUFFER_RETRY_SECONDS); past TASKBOARD_BUFFER_MAX_WRITES or _MAX_BYTES it
    goes to a spill file (taskboard.tracking.spill), replayed when the database answers
    again, on the first flush of a process and when a worker is ready. stop() spills what
    it cannot write within its timeout."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._pending: dict[Lookup, _Pending] = {}
        self._inserts: list[Row] = []
        self._inserts_due = math.inf
        self._last_write: dict[Lookup, float] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._wakes_at = math.inf
        # The database is away since (monotonic; None: it answered last time).
        self._away_since: float | None = None
        self._retry_at = -math.inf
        self._backoff = 0.0
        self._spill_now = False
        self._spill_again_at = -math.inf  # after a spill that failed (disk full)
        self._replay_due = True  # spill files are looked for on the first flush
        self._replay_asked = False
        self._counts = dict.fromkeys(COUNTERS, 0)
        # When the oldest queued row creation was queued (monotonic; inf: none queued).
        self._inserts_since = math.inf
        # Batches taken and not yet settled, by the thread writing them: (writes, oldest).
        self._writing: dict[int, tuple[int, float]] = {}
        # Writes this process spilled and has not seen replayed, and the oldest one's age.
        self._spilled_waiting = 0
        self._spilled_since = math.inf
        self.on_change: Callable[[], None] | None = None  # after a batch, or a stop
        self._published_at = -math.inf

    def figures(self) -> dict[str, Any]:
        """counters(), and the write lag: pending here is every write of this process not
        yet in the database (held in memory, in a batch being written, or in a spill file
        it has not seen replayed); oldest_since, when the oldest of them was queued
        (time.monotonic(), None when there is none). Writes made at once (apply(),
        insert()) never wait here, and are in none of these figures."""
        with self._cond:
            sinces = [p.since for p in self._pending.values()]
            sinces += [since for _, since in self._writing.values()]
            sinces += [self._inserts_since, self._spilled_since]
            oldest = min(sinces)
            pending = len(self._pending) + len(self._inserts) + self._spilled_waiting
            pending += sum(count for count, _ in self._writing.values())
            return {
                **self._counts,
                "pending": pending,
                "oldest_since": None if oldest == math.inf else oldest,
                "database_away": int(self._away_since is not None),
            }

    def counters(self) -> dict[str, int]:
        """pending: writes held in memory now; written: writes of this buffer the database
        took (whether or not the state rule let them change a row); retried: writes held
        again after a failed attempt (one per write per attempt); spilled / replayed:
        writes to / from spill files; dropped: writes given up (the database refused them;
        0 while it is merely away); outages: spells of the database away; database_away: 1
        during one."""
        with self._cond:
            return {
                "pending": len(self._pending) + len(self._inserts),
                **self._counts,
                "database_away": int(self._away_since is not None),
            }

    def put(self, write: Write, *, delay: float = 0.0) -> None:
        """Queue write; due after delay, and no sooner than the rate limit allows."""
        now = time.monotonic()
        interval = 1.0 / conf.PROGRESS_WRITES_PER_SECOND
        with self._cond:
            due = max(now + delay, self._last_write.get(write.lookup, -math.inf) + interval)
            pending = self._pending.get(write.lookup)
            if pending is None:
                self._pending[write.lookup] = _Pending(write, due, now)
            else:
                pending.write = pending.write.merged_with(write)
                pending.due = min(pending.due, due)
            self._wake_by(due)

    def insert(self, row: Row, *, delay: float) -> None:
        """Queue the creation of a row (inserted before the updates of the same flush)."""
        now = time.monotonic()
        with self._cond:
            self._inserts.append(row)
            self._inserts_since = min(self._inserts_since, now)
            self._inserts_due = min(self._inserts_due, now + delay)
            self._wake_by(self._inserts_due)

    def _wake_by(self, due: float) -> None:
        # Waking the thread costs the caller a context switch: only when it would sleep past due.
        self._ensure_thread()
        if self._away_since is not None:
            # Nothing is written before the next attempt; only a full buffer wakes the thread.
            if len(self._pending) + len(self._inserts) >= conf.BUFFER_MAX_WRITES:
                self._spill_now = True
                self._cond.notify()
            return
        if due < self._wakes_at:
            self._wakes_at = due
            self._cond.notify()

    def take(self, lookup: Lookup) -> Write | None:
        """Remove and return what is pending for lookup (its final write absorbs it)."""
        with self._cond:
            self._last_write.pop(lookup, None)
            pending = self._pending.pop(lookup, None)
        return pending.write if pending else None

    def flush(self) -> None:
        """Write everything pending now, in the calling thread (what the database does not
        take is held for the flushing thread to retry)."""
        batch = self._take_all()
        try:
            self._write_all(batch.inserts, batch.writes)
        finally:
            self._settled()

    def replay_soon(self) -> None:
        """Look for spill files (of this or an earlier process) and write them, from the
        flushing thread (a worker that is ready asks so)."""
        with self._cond:
            self._replay_due = self._replay_asked = True
            self._ensure_thread()
            self._cond.notify()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the flushing thread (closing its connection), then write what is left,
        retrying until timeout; what the database still does not take is spilled."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(max(deadline - time.monotonic(), 0.0))
        try:
            while True:
                batch = self._take_all()
                if not batch.inserts and not batch.writes:
                    break
                written = self._write_all(batch.inserts, batch.writes)
                self._settled()
                if written:
                    continue
                with self._cond:
                    retry_at = self._retry_at
                if retry_at >= deadline:
                    self._spill(self._take_all(), why="this process stops")
                    break
                time.sleep(max(retry_at - time.monotonic(), 0.0))
        finally:
            with self._cond:
                self._stopping = False
            self._settled()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="taskboard-flush", daemon=True)
            self._thread.start()

    def _take_all(self) -> _Batch:
        with self._cond:
            inserts, self._inserts, self._inserts_due = self._inserts, [], math.inf
            taken = list(self._pending.values())
            self._pending.clear()
            return self._taken(inserts, taken)

    def _taken(self, inserts: list[Row], taken: list[_Pending]) -> _Batch:
        """(Under the lock.) A batch leaves the buffer: until it is settled (written, held
        again or spilled) its writes still count as pending, aged from its oldest."""
        oldest = min([p.since for p in taken], default=math.inf)
        if inserts:  # rows are always taken all at once
            oldest = min(oldest, self._inserts_since)
            self._inserts_since = math.inf
        count = len(inserts) + len(taken)
        if count:
            before, since = self._writing.get(threading.get_ident(), (0, math.inf))
            self._writing[threading.get_ident()] = (before + count, min(since, oldest))
        return _Batch(inserts, [p.write for p in taken])

    def _settled(self) -> None:
        """This thread's batch is written (or held, or spilled): no longer in flight."""
        with self._cond:
            self._writing.pop(threading.get_ident(), None)
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            with suppress(Exception):
                self.on_change()
            self._published_at = time.monotonic()

    def _next_batch(self) -> _Batch | None:
        """What is due; empty after an idle spell; None when stopping."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                if self._away_since is not None:
                    if now >= self._spill_again_at and (self._spill_now or self._full()):
                        self._spill_now = False
                        batch = self._take_all()
                        batch.spill = True
                        return batch
                    if now < self._retry_at:
                        self._wakes_at = self._retry_at
                        self._cond.wait(timeout=self._publishing(self._retry_at - now))
                        continue
                    return self._take_all()  # the next attempt: all of it (or a probe)
                if self._replay_asked:
                    self._replay_asked = False
                    return _Batch([], [])
                due = [k for k, p in self._pending.items() if p.due <= now]
                if due or self._inserts_due <= now:
                    # Take along what would fall due soon: one batch (one transaction, one
                    # wake-up) instead of one per task. Progress keeps its exact rate limit.
                    soon = now + conf.WRITE_DELAY
                    due += [
                        k
                        for k, p in self._pending.items()
                        if now < p.due <= soon and p.write.state != TaskState.PROGRESS
                    ]
                    for key in due:
                        if self._pending[key].write.state not in TERMINAL_STATES:
                            self._last_write[key] = now  # rate-limits the task's next write
                    inserts = []
                    if self._inserts_due <= now or due:  # rows first, so updates find them
                        inserts, self._inserts, self._inserts_due = self._inserts, [], math.inf
                    return self._taken(inserts, [self._pending.pop(key) for key in due])
                next_due = min([p.due for p in self._pending.values()] + [self._inserts_due])
                self._wakes_at = next_due
                if next_due == math.inf:
                    if self._cond.wait(timeout=IDLE_SECONDS) or self._pending or self._inserts:
                        continue
                    return _Batch([], [])
                self._cond.wait(timeout=self._publishing(max(next_due - now, 0.001)))
            return None

    def _publishing(self, timeout: float) -> float:
        """(Under the lock, writes waiting.) Publish the figures if due, and how long the
        thread may sleep so that they are published again in time (when someone reads
        them from another process: on_change is set)."""
        if self.on_change is None:
            return timeout
        if time.monotonic() - self._published_at >= PUBLISH_SECONDS:
            self._changed()
        return min(timeout, PUBLISH_SECONDS)

    def _full(self) -> bool:
        """Over the bound (count, or an estimate of the bytes) of what may wait in memory."""
        held = len(self._pending) + len(self._inserts)
        if held >= conf.BUFFER_MAX_WRITES:
            return True
        size = sum(_size(row) for row in self._inserts)
        size += sum(_size(p.write.fields) for p in self._pending.values())
        return size >= conf.BUFFER_MAX_BYTES

    def _run(self) -> None:
        idle = False
        checked = forgotten = time.monotonic()
        while True:
            batch = self._next_batch()
            empty = batch is not None and not (batch.inserts or batch.writes)
            probe = empty and (self._away_since is not None or self._replay_due)
            if batch is None or (empty and not probe and not idle):
                # Hold no database connection while there is nothing to write.
                with database_work():
                    _close_all_quietly()
                if batch is None:
                    return
                idle = True
                continue
            if batch.spill:
                try:
                    self._spill(batch)
                finally:
                    self._settled()
                continue
            if not empty or probe:
                idle = False
                try:
                    with database_work():
                        if time.monotonic() - checked > RECYCLE_SECONDS:
                            with suppress(Exception):
                                close_old_connections()
                            checked = time.monotonic()
                        self._write_all(batch.inserts, batch.writes)
                finally:
                    self._settled()
                if time.monotonic() - forgotten > FORGET_SECONDS:
                    self._forget_idle(horizon=forgotten)
                    forgotten = time.monotonic()

    def _forget_idle(self, horizon: float) -> None:
        with self._cond:
            for key in [k for k, t in self._last_write.items() if t < horizon]:
                del self._last_write[key]

    def _write_all(self, inserts: list[Row], writes: list[Write]) -> bool:
        """Write a batch in one transaction (spill files first, when some may be waiting).
        True when the database took it; when it is away, what was not written is held."""
        writes = [w for w in writes if w.still_needed is None or w.still_needed()]
        if not inserts and not writes and self._away_since is None and not self._replay_due:
            return True
        try:
            if self._replay_due:
                self._replay()  # older than anything held in memory: first
            if inserts or writes:
                # One transaction per batch: one commit (one WAL flush) for all of it.
                changed = _write_batch(inserts, writes)
            else:
                changed = []
                _probe()
        except Exception as exc:
            _close_quietly()
            if _database_away(exc):
                self._hold(inserts, writes, exc)
                return False
            logger.warning(
                "taskboard: a batch of %d writes failed, retrying one by one",
                len(inserts) + len(writes),
                exc_info=True,
            )
            return self._write_one_by_one(inserts, writes)
        self._count("written", len(inserts) + len(writes))
        self._came_back()
        _announce_all(changed, inserted=bool(inserts))
        return True

    def _write_one_by_one(
        self, inserts: list[Row], writes: list[Write], *, replayed: bool = False
    ) -> bool:
        """After a batch the database refused: each write alone, so one bad write costs
        only itself (dropped, and counted); the database going away holds the rest."""
        for i, row in enumerate(inserts):
            try:
                with isolated():
                    _insert([row])
                self._count("written", not replayed)  # (replayed: counted by the caller)
            except Exception as exc:
                if _database_away(exc):
                    _close_quietly()
                    self._hold(inserts[i:], writes, exc)
                    return False
                self._drop()
                logger.exception(
                    "taskboard: could not record the publication of %s", row["task_id"]
                )
        if inserts:
            stamp_bump()  # (each write's apply() bumps for itself)
        for i, write in enumerate(writes):
            try:
                apply(write)
                self._count("written", not replayed)
            except Exception as exc:
                if _database_away(exc):
                    _close_quietly()
                    self._hold([], writes[i:], exc)
                    return False
                self._drop()
                logger.exception("taskboard: could not record %s of %s", write.state, write.lookup)
        self._came_back()
        return True

    def _drop(self) -> None:
        self._count("dropped", 1)

    def _count(self, name: str, n: int | bool) -> None:
        if n:
            with self._cond:
                self._counts[name] += n

    def _hold(self, inserts: list[Row], writes: list[Write], exc: BaseException) -> None:
        """Keep what the database did not take, ahead of what came meanwhile, and set the
        next attempt (the backoff doubles from the first delay up to its cap)."""
        first, cap = conf.BUFFER_RETRY_SECONDS
        now = time.monotonic()
        with self._cond:
            # Held again: pending as before, from the oldest of the batch they came in.
            _, since = self._writing.pop(threading.get_ident(), (0, now))
            since = min(since, now)
            went_away = self._away_since is None
            if went_away:
                self._away_since = now
                self._backoff = first
                self._counts["outages"] += 1
            else:
                self._backoff = min(max(self._backoff * 2, first), cap)
            self._retry_at = now + self._backoff
            self._counts["retried"] += len(inserts) + len(writes)
            self._inserts[:0] = inserts  # rows first, and the oldest first
            if inserts:
                self._inserts_due = now
                self._inserts_since = min(self._inserts_since, since)
            for write in writes:
                pending = self._pending.get(write.lookup)
                if pending is None:
                    self._pending[write.lookup] = _Pending(write, now, since)
                else:  # the held write is the older: a newer one merges into it
                    pending.write = write.merged_with(pending.write)
                    pending.due = now
                    pending.since = min(pending.since, since)
            held = len(self._pending) + len(self._inserts)
            self._ensure_thread()
            self._cond.notify()
        if went_away:
            logger.warning(
                "taskboard: the database is unreachable (%s): holding %d tracking writes, "
                "retrying every %g s to %g s; none is dropped",
                _one_line(exc),
                held,
                first,
                cap,
            )

    def _came_back(self) -> None:
        with self._cond:
            if self._away_since is None:
                return
            away = time.monotonic() - self._away_since
            self._away_since = None
            self._retry_at = -math.inf
            self._backoff = 0.0
        counts = self.counters()
        logger.warning(
            "taskboard: the database is back after %.1f s: %s",
            away,
            " ".join(f"{name}={value}" for name, value in counts.items()),
        )

    def _spill(self, batch: _Batch, why: str = "the write buffer is full") -> None:
        """Write the batch to a spill file: the database is away and memory is full (or
        the process stops). A write whose still_needed says no is not spilled; a spilled
        one is replayed whatever happens to this process, guarded by the state rule alone."""
        writes = [w for w in batch.writes if w.still_needed is None or w.still_needed()]
        records = [{"insert": row} for row in batch.inserts]
        records += [{"write": write.to_record()} for write in writes]
        if not records:
            return
        try:
            path = spill.save(records)
        except Exception:
            logger.exception(
                "taskboard: could not spill %d tracking writes to %s; holding them in memory",
                len(records),
                spill.spill_dir(),
            )
            with self._cond:
                self._spill_again_at = time.monotonic() + conf.BUFFER_RETRY_SECONDS[1]
            self._hold(batch.inserts, writes, OSError("spill failed"))
            return
        with self._cond:
            self._counts["spilled"] += len(records)
            self._replay_due = True
            # Still not in the database: pending (from this batch's oldest) until replayed.
            _, since = self._writing.pop(threading.get_ident(), (0, time.monotonic()))
            self._spilled_waiting += len(records)
            self._spilled_since = min(self._spilled_since, since)
        logger.warning(
            "taskboard: the database is away and %s: %d tracking writes spilled to %s, "
            "replayed when it answers",
            why,
            len(records),
            path,
        )

    def _replay(self) -> None:
        """Write every spill file this process can claim, oldest first; each is deleted
        once written, and given back when the database is away (raising)."""
        try:
            claimed = spill.claim_all()
        except OSError:
            logger.exception("taskboard: could not look for spill files in %s", spill.spill_dir())
            claimed = []
        for path in claimed:
            try:
                records = spill.load(path)
                inserts = [_restored(r["insert"]) for r in records if "insert" in r]
                writes = [Write.from_record(r["write"]) for r in records if "write" in r]
            except (OSError, ValueError, KeyError, TypeError):
                logger.exception("taskboard: could not read %s; set aside", path)
                spill.set_aside(path)
                continue
            try:
                changed = _write_batch(inserts, writes)
            except Exception as exc:
                _close_quietly()
                if _database_away(exc):
                    spill.release_all()  # this one and the others: for the next attempt
                    raise
                # The database refused one of them: each alone (a refused one is dropped,
                # counted); if it goes away meanwhile, the rest is held in memory.
                self._write_one_by_one(inserts, writes, replayed=True)
            else:
                _announce_all(changed, inserted=bool(inserts))
            spill.done(path)
            with self._cond:
                self._counts["replayed"] += len(records)
            logger.info("taskboard: %d spilled tracking writes replayed (%s)", len(records), path)
        with self._cond:
            self._replay_due = False
            # Every spill file there was is written (whichever process replayed ours).
            self._spilled_waiting = 0
            self._spilled_since = math.inf


def _write_batch(inserts: list[Row], writes: list[Write]) -> list[Write]:
    with transaction.atomic():
        if inserts:
            _insert(inserts)
        return _update_many(writes)


def _probe() -> None:
    """Does the database answer? (raises when it does not)"""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _database_away(exc: BaseException) -> bool:
    """Did the database fail to answer (try again later), rather than refuse this write?"""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - SQLite-only installs
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def _close_quietly() -> None:
    # A broken connection must go: the next attempt opens a new one. Inside a caller's
    # transaction the connection is the caller's to end.
    if connection.in_atomic_block:
        return
    with suppress(Exception):
        connection.close()


def _close_all_quietly() -> None:
    with suppress(Exception):
        connections.close_all()


def _size(values: dict[str, Any]) -> int:
    """Roughly how many bytes these values take (the bound of the buffer, not exact)."""
    return 64 + sum(len(name) + len(str(value)) for name, value in values.items())


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


buffer = WriteBuffer()
# A forked worker child must not inherit the parent's pending writes, lock or thread.
os.register_at_fork(after_in_child=buffer._reset)
# At exit what the database did not take is spilled, not lost (after the handlers' flush).
atexit.register(buffer.stop)
