"""Central's database, on SQLite (the default, under ``data_dir``) or PostgreSQL (``[database] url``).

Every package writes one SQL for both: SQLite's placeholders (``?`` and ``:name``), the
common subset of the two dialects, and, where they differ, a fragment from the
connection's ``dialect`` (``db.dialect.any_of("serial")``). A ``Database`` gives every
caller the same two things on either engine:

- ``write()``: one transaction, and writes are serialised, as SQLite's ``BEGIN IMMEDIATE``
  serialises them; on PostgreSQL through a transaction-level advisory lock, so the code's
  read-then-write steps (the audit chain's head, an allocation, a cursor) stay correct
  with any number of central replicas writing at once.
- ``write_concurrently()``: one transaction that need not wait for the others, for a write
  whose correctness rests on its own rows' locks alone (an event batch: its station's row and
  its events). On PostgreSQL it runs beside the serialised writes, on a connection of its own;
  on SQLite it is ``write()`` (the file has one writer).
- ``read()``: a connection for reads that never waits for the writer (SQLite's WAL readers;
  PostgreSQL's pooled connections in autocommit), and ``snapshot()`` for a read that must
  see one moment (the audit chain's verification).

The schema has one source, each package's ``schema.py`` in SQLite's dialect; on PostgreSQL
each statement is translated (``postgres_ddl``), and the version kept in ``schema_version``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import msgspec
import psycopg
import psycopg.adapt
import psycopg.types.numeric
from psycopg import conninfo, pq
from psycopg.types.json import Json
from psycopg_pool import ConnectionPool

from fleet import sqlite
from fleet.errors import FleetError

# -- what differs between the dialects -------------------------------------------------------


@dataclass(frozen=True)
class Dialect:
    """The SQL fragments that differ between SQLite and PostgreSQL (everything else is written once)."""

    name: str

    @property
    def postgres(self) -> bool:
        return self.name == "postgresql"

    def any_of(self, column: str, placeholder: str = "?") -> str:
        """``column`` is one of a list given as one parameter (``many(values)``)."""
        if self.postgres:
            return f"{column} = ANY({placeholder})"
        return f"{column} IN (SELECT value FROM json_each({placeholder}))"

    def many(self, values: Iterable[Any]) -> Any:
        """A list as one parameter, for ``any_of`` and ``values_of``."""
        return list(values) if self.postgres else json.dumps(list(values))

    def values_of(self, placeholder: str = "?", cast: str = "TEXT") -> str:
        """A one-column table (``value``) of a list given as one parameter (``many``)."""
        if self.postgres:
            return f"(SELECT unnest(CAST({placeholder} AS {cast}[])) AS value)"
        return f"(SELECT value FROM json_each({placeholder}))"

    def rows_of(self, columns: str, placeholder: str = "?") -> str:
        """A table ``v`` of many rows given as one parameter (``rows(dicts)``), so a run of rows is
        one statement (``INSERT … SELECT … FROM``, ``UPDATE … FROM``), not one a row: on PostgreSQL
        each statement is a round trip. ``columns``: each key of the dicts and its type
        (``"clip TEXT, size BIGINT"``); the types count on PostgreSQL, SQLite keeps JSON's.

        On SQLite the rows are materialised first (``LIMIT -1``, order kept): flattened into the
        join, ``json_each`` looks like a few rows to the planner, which then scanned all of it for
        each row of the other side (8,000 cameras of a deployment's phase offered in 296 s instead
        of 0.2 s, every write of central waiting behind them)."""
        if self.postgres:
            return f"json_to_recordset(CAST({placeholder} AS json)) AS v({columns})"
        fields = ", ".join(f"value ->> '{name}' AS {name}" for name in (c.split()[0] for c in columns.split(",")))
        return f"(SELECT {fields} FROM json_each({placeholder}) LIMIT -1) AS v"

    def rows(self, rows: Iterable[dict[str, Any]]) -> Any:
        """Rows (dicts) as one parameter, for ``rows_of``."""
        if self.postgres:
            return Json(list(rows), dumps=_json_text)
        return _json_text(list(rows))

    def greatest(self, *expressions: str) -> str:
        return f"{'GREATEST' if self.postgres else 'MAX'}({', '.join(expressions)})"

    def least(self, *expressions: str) -> str:
        return f"{'LEAST' if self.postgres else 'MIN'}({', '.join(expressions)})"

    def contains(self, haystack: str, needle: str) -> str:
        """``needle`` occurs in ``haystack`` (a plain substring: no pattern characters)."""
        return f"strpos({haystack}, {needle}) > 0" if self.postgres else f"instr({haystack}, {needle}) > 0"

    def shifted_time(self, timestamp: str, amount: str) -> str:
        """An ISO timestamp (``YYYY-MM-DDTHH:MM:SS…``) moved by ``amount`` (``'+31 days'``), to the second."""
        if self.postgres:
            return (
                f"to_char(CAST(substr({timestamp}, 1, 19) AS timestamp) + CAST({amount} AS interval), "
                "'YYYY-MM-DD\"T\"HH24:MI:SS')"
            )
        return f"strftime('%Y-%m-%dT%H:%M:%S', substr({timestamp}, 1, 19), {amount})"

    def days_between(self, later: str, earlier: str) -> str:
        """Whole days from the date ``earlier`` to the date ``later`` (both ``YYYY-MM-DD…``)."""
        if self.postgres:
            return f"(CAST(substr({later}, 1, 10) AS date) - CAST(substr({earlier}, 1, 10) AS date))"
        return f"CAST(julianday(substr({later}, 1, 10)) - julianday(substr({earlier}, 1, 10)) AS INTEGER)"

    def indexed_by(self, index: str) -> str:
        """SQLite's ``INDEXED BY`` (where its planner needs the hint); nothing on PostgreSQL."""
        return "" if self.postgres else f"INDEXED BY {index}"

    def join_each(self, table: str, alias: str, index: str, on: str) -> str:
        """``JOIN table alias ON on``, looked up by ``index`` for each row on its left: SQLite's
        ``CROSS JOIN`` (its planner keeps that order) and ``INDEXED BY``, which otherwise scanned
        the big table first and probed the few rows on its left (every clip for no open request);
        PostgreSQL's ``LATERAL``, whose planner otherwise misjudged a join on a time window (a
        hold's) and hashed the whole table instead of probing it a few times."""
        if self.postgres:
            return f"CROSS JOIN LATERAL (SELECT * FROM {table} {alias} WHERE {on} OFFSET 0) {alias}"
        return f"CROSS JOIN {table} {alias} INDEXED BY {index} ON {on}"

    def without_rowid(self) -> str:
        """SQLite's ``WITHOUT ROWID`` (a table stored as its key's b-tree); nothing on PostgreSQL (a heap)."""
        return "" if self.postgres else "WITHOUT ROWID"

    def flag_set(self, column: str) -> str:
        """A 0/1 flag is set, as a partial index says it: bare on SQLite (matched literally), ``<> 0`` on PostgreSQL."""
        return f"{column} <> 0" if self.postgres else column

    def same(self, left: str, right: str) -> str:
        """``left`` equals ``right``, NULL equalling NULL (SQLite's ``IS``)."""
        return f"{left} IS NOT DISTINCT FROM {right}" if self.postgres else f"{left} IS {right}"

    def unindexed(self, text: str) -> str:
        """A text expression hidden from the planner as an index to use: SQLite's unary ``+``; on
        PostgreSQL joined to '' (its planner matches no index to that, and it sorts the same)."""
        return f"({text} || '')" if self.postgres else f"+{text}"


_json_encode = msgspec.json.Encoder().encode


def _json_text(value: Any) -> str:
    return _json_encode(value).decode()


SQLITE = Dialect("sqlite")
POSTGRESQL = Dialect("postgresql")


class Database(Protocol):
    """What the packages are given (as ``writer``): see the module's docstring."""

    dialect: Dialect
    concurrent_writes: bool
    """Whether ``write_concurrently`` runs beside ``write`` (PostgreSQL) or waits for it (SQLite)."""

    def write(self, *, durable: bool = True, wait_s: float | None = None) -> Any: ...

    def write_concurrently(self) -> Any: ...

    def read(self) -> Any: ...

    def snapshot(self) -> Any: ...

    def close(self, timeout_s: float = 30.0) -> None: ...


# -- SQLite ----------------------------------------------------------------------------------


class SqliteConnection(sqlite3.Connection):
    """A plain sqlite3 connection that says its dialect."""

    dialect = SQLITE

    def fetch_bytes(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> sqlite3.Cursor:
        """``execute`` (``PostgresConnection.fetch_bytes``: results in binary there)."""
        return self.execute(sql, params)

    def pipelined(self) -> AbstractContextManager[None]:
        """``PostgresConnection.pipelined``: SQLite has no round trips to save."""
        return nullcontext()

    def synced(self) -> None:
        """``PostgresConnection.synced``: every statement's outcome is known already."""


class SqliteDatabase(sqlite.Writer):
    """``fleet.sqlite.Writer`` on central's file, its connections saying their dialect."""

    dialect = SQLITE
    concurrent_writes = False

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            sqlite.open_database(path, factory=SqliteConnection),
            readers=path,
            factory=SqliteConnection,
            group_commit=True,  # many uploads commit at once, each on its own worker thread
        )

    def write_concurrently(self) -> AbstractContextManager[sqlite3.Connection]:
        """``write()``: the file has one writer."""
        return self.write()

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every statement sees the same commit (WAL), blocking no writer."""
        with self.read() as db:
            if db.in_transaction:  # inside a write: the write's own view
                yield db
                return
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.execute("COMMIT")


# -- PostgreSQL ------------------------------------------------------------------------------

KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
"""The client's side of each connection: a server that vanished is noticed within ~11 s."""
SESSION = (
    "-c lock_timeout=30000 -c idle_in_transaction_session_timeout=60000 "
    "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3 -c jit=off"
)
"""Each session's settings. A write waits at most 30 s for the write lock, as SQLite's busy
timeout (then 503, and the client retries), never for ever behind a replica that froze in a
transaction; the server ends a session idle in a transaction for a minute (its locks with
it), and probes a silent client, so a vanished replica's session goes within ~11 s. No JIT:
central's statements read a page of rows, and compiling one cost more than running it (a
dashboard query whose estimate passed ``jit_above_cost`` spent 140 ms compiling, 1 ms running)."""
READ_WAIT_S = 5.0
"""How long a read waits for a pooled connection before it is answered 503 (busy, Retry-After).
While PostgreSQL is down or restarting the pool has none to give: at psycopg_pool's default
(30 s) every request, health checks included, held a server thread that long, the threads ran
out and not even ``/healthz`` answered until well after the database was back."""
WRITE_LOCK = 0x466C6565_74575254  # "FleetWRT": the advisory lock that serialises central's writes
MIGRATE_LOCK = 0x466C6565_744D4947  # "FleetMIG": one replica migrates at a time

_TOKENS = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|--[^\n]*|::|\?|:[A-Za-z_]\w*|%")


@lru_cache(maxsize=4096)
def postgres_placeholders(sql: str) -> str:
    """SQLite's placeholders (``?``, ``:name``) as psycopg's (``%s``, ``%(name)s``); every ``%`` escaped."""

    def swap(match: re.Match[str]) -> str:
        token = match.group()
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        if token.startswith(":") and token != "::":
            return f"%({token[1:]})s"
        return token.replace("%", "%%")  # psycopg reads % even in quotes and comments

    return _TOKENS.sub(swap, sql)


_PLACEHOLDER = re.compile(r"%%|%s")


def _binary_list(value: Any) -> bool:
    """Whether ``value`` is a list (``many``) of strings or of integers, sent faster as a binary array."""
    if not isinstance(value, list) or not value:
        return False
    kind = type(value[0])
    return (kind is str or kind is int) and all(type(v) is kind for v in value)


@lru_cache(maxsize=1024)
def _binary_placeholders(query: str, binary: tuple[bool, ...]) -> str:
    """``query`` (psycopg's placeholders) with the n-th ``%s`` as ``%b`` where ``binary[n]``: psycopg
    sends a list in text as one quoted element at a time (a regular expression each, ~2 µs),
    in binary as it is."""
    count = iter(binary)

    def swap(match: re.Match[str]) -> str:
        token = match.group()
        return "%b" if token == "%s" and next(count, False) else token

    return _PLACEHOLDER.sub(swap, query)


class _IntFromBool(psycopg.adapt.Dumper):
    """Python's bools go to integer columns (SQLite has no boolean): 1 and 0, as SQLite stores them."""

    oid = psycopg.postgres.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


class _NumberFromNumeric(psycopg.adapt.Loader):
    """PostgreSQL's SUM of integers is ``numeric``: an int when whole (as SQLite gives), else a float."""

    def load(self, data: Any) -> Any:
        text = bytes(data).decode()
        if "." in text or "e" in text.lower() or text in ("NaN", "Infinity", "-Infinity"):
            return float(text)
        return int(text)


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_dumper(bool, _IntFromBool)
    conn.adapters.register_loader("numeric", _NumberFromNumeric)


class PostgresConnection:
    """A psycopg connection that runs the SQL the packages write (SQLite's placeholders)."""

    dialect = POSTGRESQL

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw
        self._pipe: psycopg.Pipeline | None = None
        """The pipeline ``pipelined`` is in, if any."""

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> psycopg.Cursor[Any]:
        if not params:  # psycopg reads no placeholders (and no %) in a statement without parameters
            return self.raw.execute(sql, None)
        query = postgres_placeholders(sql)
        if isinstance(params, list | tuple):
            binary = tuple(_binary_list(p) for p in params)
            if any(binary):
                query = _binary_placeholders(query, binary)
        return self.raw.execute(query, params, prepare=False if _of_many(params) else None)

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        """Statements sent without waiting for each one's answer (psycopg's pipeline mode): a
        statement whose result is read waits for everything before it; the others' errors are
        raised at a later statement or at ``synced``. For a run of many statements on one
        connection (the projection), where each waited a round trip: PostgreSQL on another
        machine makes that a network's. Inside it COPY is not allowed (PostgreSQL's rule):
        ``executemany`` sends arrays instead."""
        with self.raw.pipeline() as pipe:
            self._pipe = pipe
            try:
                yield
            finally:
                self._pipe = None

    def synced(self) -> None:
        """In ``pipelined``: wait for every statement sent so far and raise the first one's error
        (a savepoint is released, or rolled back, only once its statements are known to have
        run). After an error PostgreSQL skips what follows up to the next sync (psycopg raises
        ``PipelineAborted`` for those) and psycopg may leave results unread: synced again until
        none is left."""
        if self._pipe is None:
            return
        first: psycopg.Error | None = None
        for _ in range(SYNC_ROUNDS):
            try:
                self._pipe.sync()
            except psycopg.errors.PipelineAborted:
                continue  # skipped because of an error raised already
            except psycopg.Error as exc:
                if self.raw.broken or self.raw.closed:
                    raise
                first = first or exc
                continue
            if first is not None:
                raise first
            return
        # A connection in a state nothing here knows: central's own trouble (``trouble``: broken),
        # never a statement's fault, so no event is refused for it.
        raise first or psycopg.OperationalError("the database connection's pipeline did not settle")

    def _pipelined(self) -> bool:
        return self._pipe is not None

    def fetch_bytes(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> psycopg.Cursor[Any]:
        """``execute``, its results in binary: a ``bytea`` column comes as it is stored, where in text
        the server spells every byte as two hex digits and the client reads them back (the
        projection reads every event's body: ~3 µs a row less). Only for columns of text, integers
        and bytes: the loaders for text results (``numeric``) do not apply."""
        return self.raw.execute(postgres_placeholders(sql), params, binary=True)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | dict[str, Any]]) -> psycopg.Cursor[Any]:
        """Many rows: an INSERT of plain values goes by ``COPY`` (``_copied``), or with ``ON
        CONFLICT DO NOTHING`` as one statement over arrays (``_unnested``); anything else as one
        execution a row (pipelined)."""
        cursor = self.raw.cursor()
        rows = list(rows)
        if len(rows) > 1 and not self._pipelined() and self._copied(cursor, sql, rows):
            pass
        elif len(rows) > 1 and (columns := self._unnested(sql, rows)) is not None:
            statement, arrays = columns
            cursor.execute(statement, arrays)
        elif rows:
            cursor.executemany(postgres_placeholders(sql), rows)
        return cursor

    def _copied(self, cursor: psycopg.Cursor[Any], sql: str, rows: list[Any]) -> bool:
        """``INSERT INTO t (a, b) VALUES (?, ?)`` for many rows by ``COPY t (a, b) FROM STDIN``:
        the same rows, defaults and constraints (one violation fails them all, as the one
        statement would), at about 2.5 µs a row of ten columns against 6.5 through arrays (the
        audit chain's inserts, the events). False, with nothing sent, for any other shape (a
        conflict clause: COPY has none) or a value not of its column's type."""
        shape = _plain_insert(sql)
        if shape is None or shape[2] or not all(isinstance(r, tuple | list) for r in rows):
            return False
        table, names, _ = shape
        types = self._column_types(table)
        try:
            casts = [types[name.strip('"')] for name in names]
        except KeyError:
            return False
        columns: list[list[Any]] = [list(column) for column in zip(*rows, strict=True)]
        if not all(_coerce(values, cast) for values, cast in zip(columns, casts, strict=True)):
            return False
        with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
            for row in zip(*columns, strict=True):
                copy.write_row(row)
        return True

    def _unnested(self, sql: str, rows: list[Any]) -> tuple[str, list[list[Any]]] | None:
        """``INSERT INTO t (a, b) VALUES (?, ?) [ON CONFLICT … DO NOTHING]`` for many rows as one
        ``INSERT … SELECT * FROM unnest(a[], b[])``: PostgreSQL then runs one statement, not one
        a row (a row each costs it ~40 µs; SQLite's executemany costs ~2). None when the
        statement is of another shape (an update, an expression among the values, DO UPDATE,
        which must not meet one key twice in a statement) or a value is not of its column's type."""
        shape = _plain_insert(sql)
        if shape is None or not all(isinstance(r, tuple | list) for r in rows):
            return None
        table, names, tail = shape
        types = self._column_types(table)
        try:
            casts = [types[name.strip('"')] for name in names]
        except KeyError:
            return None
        arrays: list[list[Any]] = [list(column) for column in zip(*rows, strict=True)]
        for values, cast in zip(arrays, casts, strict=True):
            if not _coerce(values, cast):
                return None
        # Binary arrays (%b): psycopg's text format quotes every element of every string, a
        # regular expression each, which cost more than the INSERT itself (~2 µs an element).
        unnest = ", ".join(f"CAST(%b AS {cast}[])" for cast in casts)
        return f"INSERT INTO {table} ({', '.join(names)}) SELECT * FROM unnest({unnest}){tail}", arrays

    def _column_types(self, table: str) -> dict[str, str]:
        found = _COLUMN_TYPES.get(table)
        if found is None:
            found = _COLUMN_TYPES[table] = dict(
                self.raw.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = %s",
                    [table],
                ).fetchall()
            )
        return found

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE


def _of_many(params: Sequence[Any] | dict[str, Any]) -> bool:
    """A statement given a list of values (``many``) or rows (``rows``) as one parameter: planned for
    them each time, never prepared. psycopg prepares a statement run often, and PostgreSQL may
    then keep one generic plan for it: one made while a table was small (a new database) scans
    it, and went on scanning it as it grew (the projection's lookup of a run's clips among the
    attributions, once 1.5 ms for every 80 clips at 16,000, and growing)."""
    values = params.values() if isinstance(params, dict) else params
    return any(isinstance(v, list | Json) for v in values)


_INSERT_VALUES = re.compile(
    r"^\s*INSERT INTO (\w+) \(([^)]*)\)\s*VALUES\s*\(([?,\s]*)\)\s*(ON CONFLICT(?: \([\w, ]*\))? DO NOTHING)?\s*$",
    re.IGNORECASE,
)
SYNC_ROUNDS = 100
"""``synced`` gives up (the connection is in a state it does not know) after this many syncs."""
_COLUMN_TYPES: dict[str, dict[str, str]] = {}
"""Each table's column types, read once a process (the schema is the same in every database of it)."""


@lru_cache(maxsize=256)
def _plain_insert(sql: str) -> tuple[str, list[str], str] | None:
    """(table, columns, " ON CONFLICT … DO NOTHING" or "") of an INSERT of one ``?`` a column; else None."""
    match = _INSERT_VALUES.match(sql)
    if match is None:
        return None
    table, columns, values, tail = match.groups()
    names = [c.strip() for c in columns.split(",")]
    if values.count("?") != len(names):
        return None
    return table, names, f" {tail}" if tail else ""


def _coerce(values: list[Any], cast: str) -> bool:
    """``values`` made the type of their column, in place (psycopg sends a list as one array
    type); False when one cannot be, and the rows go one by one as they would on their own."""
    for i, v in enumerate(values):
        if v is None:
            continue
        if cast == "bigint":
            if not isinstance(v, int):
                return False
            values[i] = int(v)  # a bool as 0 or 1, as SQLite stores it
        elif cast == "double precision":
            if not isinstance(v, int | float):
                return False
            values[i] = float(v)
        elif cast == "text":
            if not isinstance(v, str):
                return False
        elif cast == "bytea":
            if not isinstance(v, bytes | bytearray | memoryview):
                return False
            values[i] = bytes(v)
        else:
            return False
    return True


class PostgresDatabase:
    """Central's state in PostgreSQL: one writing connection per process, a pool for reads, a pool
    for the writes that run beside it (``write_concurrently``)."""

    dialect = POSTGRESQL
    concurrent_writes = True

    def __init__(
        self, url: str, *, readers: int = 8, concurrent_writers: int = 4, application_name: str = "fleet-central"
    ) -> None:
        self.url = url
        self._kwargs = {"autocommit": True, "application_name": application_name, "options": SESSION, **KEEPALIVE}
        self._lock = threading.RLock()
        self._writer: PostgresConnection | None = None
        self.pool = self._pool("readers", readers)
        self.concurrent = self._pool("concurrent writers", concurrent_writers)
        """Connections for ``write_concurrently``: as many of those transactions at once, each
        waiting at most ``READ_WAIT_S`` for one (then 503, busy)."""
        try:
            self.pool.open(wait=True, timeout=30.0)
            self.concurrent.open(wait=True, timeout=30.0)
        except psycopg.Error as exc:
            self._close_pools()
            raise FleetError(f"cannot connect to PostgreSQL at {redacted(url)}: {exc}") from None
        except Exception as exc:  # the pool's own timeout (PoolTimeout) wraps the reason
            self._close_pools()
            raise FleetError(f"cannot connect to PostgreSQL at {redacted(url)}: {exc}") from None

    def _pool(self, name: str, size: int) -> ConnectionPool:
        return ConnectionPool(
            self.url,
            min_size=1,
            max_size=size,
            kwargs=self._kwargs,
            configure=_configure,
            open=False,
            name=name,
            timeout=READ_WAIT_S,
        )

    def _close_pools(self, timeout_s: float = 30.0) -> None:
        self.pool.close(timeout=timeout_s)
        self.concurrent.close(timeout=timeout_s)

    def connect(self) -> PostgresConnection:
        """A connection of its own (autocommit), for a caller that keeps it: the caller closes it."""
        raw = psycopg.connect(self.url, **self._kwargs)  # type: ignore[arg-type]
        _configure(raw)
        return PostgresConnection(raw)

    def _writing(self) -> PostgresConnection:
        if self._writer is None or self._writer.raw.closed or self._writer.raw.broken:
            if self._writer is not None:
                self._writer.raw.close()
            self._writer = self.connect()
        return self._writer

    @contextmanager
    def write(self, *, durable: bool = True, wait_s: float | None = None) -> Iterator[PostgresConnection]:
        """One transaction, serialised with every other central process's writes (see the module)."""
        with self._lock:
            conn = self._writing()
            if conn.in_transaction:  # nested: the outer transaction commits
                yield conn
                return
            raw = conn.raw
            raw.execute("BEGIN")
            try:
                if wait_s is not None:
                    raw.execute(f"SET LOCAL lock_timeout = {max(1, int(wait_s * 1000))}")
                raw.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK])
                if not durable:
                    raw.execute("SET LOCAL synchronous_commit = off")
                yield conn
            except BaseException:
                if not raw.closed:
                    try:
                        raw.execute("ROLLBACK")
                    except psycopg.OperationalError:
                        pass  # the connection is gone, and the transaction with it
                raise
            else:
                raw.execute("COMMIT")

    @contextmanager
    def write_concurrently(self) -> Iterator[PostgresConnection]:
        """One transaction without the write lock, on a pooled connection of its own: it runs while
        ``write()``'s run, here and on every replica. Only for a write that takes part in none of
        their read-then-write steps (the audit chain, the changes feed, an allocation) and whose
        rows' own locks keep it correct; a read inside it sees only what others committed (its
        own connection is not ``read()``'s)."""
        with self.concurrent.connection() as raw, raw.transaction():
            yield PostgresConnection(raw)

    @contextmanager
    def read(self) -> Iterator[PostgresConnection]:
        if self._lock._is_owned():  # type: ignore[attr-defined]  # inside a write: see its changes
            with self._lock:
                yield self._writing()
            return
        with self.pool.connection() as raw:
            yield PostgresConnection(raw)

    @contextmanager
    def snapshot(self) -> Iterator[PostgresConnection]:
        """One read transaction that sees one moment throughout (REPEATABLE READ, READ ONLY)."""
        with self.read() as conn:
            if conn.in_transaction:
                yield conn
                return
            conn.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield conn
            finally:
                conn.raw.execute("COMMIT")

    def close(self, timeout_s: float = 30.0) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.raw.close()
                self._writer = None
        self._close_pools(timeout_s)


def redacted(url: str) -> str:
    """Where a URL points, without its password (in the URL's user part or its parameters): for
    messages, logs and the audit trail."""
    try:
        params = conninfo.conninfo_to_dict(url)
    except Exception:  # its message would quote the URL
        return "postgresql://(a URL that cannot be read)"
    params.pop("password", None)
    return conninfo.make_conninfo("", **params)


_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/@:]*):[^\s@/]*@")
_PARAM_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd|secret|token)(\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s&;,]+)")


def without_passwords(text: str) -> str:
    """``text`` (an error's message) with any URL's password and any ``password=...`` taken out:
    what is kept in the database and shown by a command (a database URL in a driver's message)."""
    return _PARAM_PASSWORD.sub(r"\1\2***", _URL_PASSWORD.sub(r"\1:***@", text))


# -- the database's own trouble ---------------------------------------------------------------

_SQLITE_TROUBLE = {
    sqlite3.SQLITE_FULL: "full",
    sqlite3.SQLITE_BUSY: "busy",
    sqlite3.SQLITE_LOCKED: "busy",
    sqlite3.SQLITE_IOERR: "broken",
    sqlite3.SQLITE_NOMEM: "broken",
    sqlite3.SQLITE_READONLY: "broken",
    sqlite3.SQLITE_INTERRUPT: "broken",
    sqlite3.SQLITE_CANTOPEN: "broken",
    sqlite3.SQLITE_CORRUPT: "broken",
    sqlite3.SQLITE_NOTADB: "broken",
    sqlite3.SQLITE_PROTOCOL: "broken",
}
_POSTGRES_BUSY = (
    psycopg.errors.LockNotAvailable,  # lock_timeout (a write's wait_s)
    psycopg.errors.QueryCanceled,
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
)


_BROKEN_CLASSES = ("08", "53", "57", "58", "XX")
"""SQLSTATE classes of the server's own state: connection, resources, operator intervention
(a shutdown, a restart), system and internal errors. Every other class (a value too long for
an index, bad data, a constraint, an aborted transaction) is the statement's own fault."""


def trouble(exc: BaseException) -> str | None:
    """The database's own condition behind ``exc``, whatever the statement: ``full`` (its disk),
    ``busy`` (a wait ran out: try again soon), ``broken`` (unreachable, restarting, failing);
    None when the statement itself is at fault (a constraint, a bug)."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return _SQLITE_TROUBLE.get(code & 0xFF) if code is not None else None
    if isinstance(exc, psycopg.errors.DiskFull):
        return "full"
    if isinstance(exc, _POSTGRES_BUSY) or type(exc).__name__ == "PoolTimeout":
        return "busy"
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate
        if state is None:  # no answer from the server at all: the connection failed or was lost
            return "broken" if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) else None
        if state[:2] in _BROKEN_CLASSES:
            return "broken"
    return None


# -- the schema on PostgreSQL ----------------------------------------------------------------

_RESERVED = re.compile(r'(?<!["\w])(offset|user)(?![\w"])')
"""Column names that are reserved words in PostgreSQL (``user`` is even a function there)."""
_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER PRIMARY KEY\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\)\s*WITHOUT ROWID\s*$"), ")"),
)
_FLAG_PREDICATE = re.compile(r"\b(WHERE|AND) (\w+)(?=\s*(?:\bAND\b|;|$))")
"""A partial index on a bare integer flag (``WHERE flag_stale``): PostgreSQL wants a boolean."""


def postgres_ddl(statement: str) -> str:
    """One schema statement in SQLite's dialect, in PostgreSQL's.

    Types map to their PostgreSQL peers (64-bit integers, doubles, bytea); ``INTEGER PRIMARY
    KEY`` becomes an identity; a table with SQLite's implicit ``rowid`` (no ``WITHOUT ROWID``,
    no integer key) gets a ``rowid`` identity column, so the code's ``rowid`` works on both;
    reserved names are quoted; a bare flag in an index's ``WHERE`` compares with 0."""
    sql = statement.strip().rstrip(";").strip()
    head = sql.split(None, 3)
    if head[:2] == ["CREATE", "TABLE"]:
        implicit_rowid = not re.search(r"WITHOUT ROWID\s*$", sql) and "INTEGER PRIMARY KEY" not in sql
        for pattern, replacement in _TYPES:
            sql = pattern.sub(replacement, sql)
        if implicit_rowid:
            sql = sql[: sql.rindex(")")] + ",\n    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE)"
    elif head[:2] == ["ALTER", "TABLE"]:
        for pattern, replacement in _TYPES:
            sql = pattern.sub(replacement, sql)
    elif "INDEX" in head[:3] and " WHERE " in sql:
        table, predicate = sql.split(" WHERE ", 1)
        sql = table + _FLAG_PREDICATE.sub(r"\1 \2 <> 0", f" WHERE {predicate}")
    return _RESERVED.sub(r'"\1"', sql)


def migrate_postgres(db: PostgresDatabase, migrations: Sequence[str]) -> int:
    """Apply the versions not yet applied, each in one transaction; replicas starting at once take turns."""
    conn = db.connect()
    try:
        raw = conn.raw
        with raw.transaction():  # under the lock: replicas creating it at once would collide
            raw.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATE_LOCK])
            raw.execute(
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(one INTEGER PRIMARY KEY CHECK (one = 1), version INTEGER NOT NULL)"
            )
        current = _version(raw)
        if current > len(migrations):
            raise FleetError(f"database schema v{current} is newer than this program (v{len(migrations)}); upgrade it")
        if current == len(migrations):
            return current
        for version, script in enumerate(migrations, start=1):
            with raw.transaction():
                raw.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATE_LOCK])
                if _version(raw) >= version:
                    continue
                for statement in sqlite.split_statements(script):
                    raw.execute(postgres_ddl(statement))
                raw.execute(
                    "INSERT INTO schema_version (one, version) VALUES (1, %s) "
                    "ON CONFLICT (one) DO UPDATE SET version = excluded.version",
                    [version],
                )
        return len(migrations)
    finally:
        conn.raw.close()


def _version(raw: psycopg.Connection[Any]) -> int:
    row = raw.execute("SELECT version FROM schema_version WHERE one = 1").fetchone()
    return int(row[0]) if row else 0
