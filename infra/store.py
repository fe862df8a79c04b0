"""Where operations, their events, stack records and idempotency keys live.

One class API over two databases: SQLite at ``<state dir>/operations.db`` (one host, several
processes) and PostgreSQL when the state backend is a ``postgres://`` URL (a fleet). Both run
the same SQL, written with ``?`` placeholders (PostgreSQL gets ``%s``), in four ``burner_``
tables created on first use. The rule "at most one queued or running operation per stack" is a
partial unique index, so it holds whichever process writes.
"""

from __future__ import annotations

import abc
import base64
import binascii
import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from infra.errors import ConflictError, InfraError, NotFoundError, ParameterError
from infra.settings import Settings
from offline_pulumi.storage import redact_url

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed", "cancelled")
STACK_FIELDS = ("status", "config", "outputs", "updated", "expires", "last_operation")
CONNECT_TIMEOUT = 10.0
SQLITE_BUSY_TIMEOUT = 30.0
POOL_SIZE = 8

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS burner_stacks (
        name TEXT PRIMARY KEY, program TEXT NOT NULL, status TEXT NOT NULL,
        config TEXT NOT NULL, outputs TEXT, created DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION,
        last_operation TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS burner_operations (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, stack TEXT NOT NULL, program TEXT NOT NULL,
        status TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, started DOUBLE PRECISION,
        finished DOUBLE PRECISION, error_code TEXT, error_message TEXT, outputs TEXT,
        last_seq INTEGER NOT NULL DEFAULT 0)""",
    """CREATE UNIQUE INDEX IF NOT EXISTS burner_operations_one_active
        ON burner_operations (stack) WHERE status IN ('queued', 'running')""",
    "CREATE INDEX IF NOT EXISTS burner_operations_newest ON burner_operations (created, id)",
    """CREATE INDEX IF NOT EXISTS burner_operations_by_stack
        ON burner_operations (stack, created, id)""",
    """CREATE TABLE IF NOT EXISTS burner_events (
        operation TEXT NOT NULL, seq INTEGER NOT NULL, time DOUBLE PRECISION NOT NULL,
        type TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (operation, seq))""",
    """CREATE TABLE IF NOT EXISTS burner_idempotency (
        key TEXT PRIMARY KEY, request_hash TEXT NOT NULL, operation TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL)""",
)
_OPERATION = ("SELECT id, kind, stack, program, status, created, started, finished, error_code, "
              "error_message, outputs FROM burner_operations")
_STACK = ("SELECT name, program, status, config, outputs, created, updated, expires, "
          "last_operation FROM burner_stacks")
_IS_ACTIVE = "status IN ('queued', 'running')"
_IS_FINAL = "status IN ('succeeded', 'failed', 'cancelled')"


class StoreError(InfraError):
    """Raised when the operation store cannot be reached or used; never shows a password."""

    status = 503
    code = "store_unavailable"
    title = "Operation store unavailable"
    retry_after = 5


def iso(when: float) -> str:
    """An epoch time as ISO 8601 UTC with milliseconds and a ``Z``."""
    text = datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _iso_or_none(when: float | None) -> str | None:
    return None if when is None else iso(when)


@dataclasses.dataclass(frozen=True)
class OperationRecord:
    """One operation on a stack: what it does, where it stands, how it ended."""

    id: str
    kind: str
    stack: str
    program: str
    status: str
    created: float
    started: float | None = None
    finished: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    outputs: dict[str, Any] | None = None  # already masked by the caller

    def to_json(self) -> dict[str, Any]:
        """The API's Operation shape."""
        error = (None if self.error_code is None and self.error_message is None else
                 {"code": self.error_code, "message": self.error_message})
        return {"id": self.id, "kind": self.kind, "status": self.status, "stack": self.stack,
                "program": self.program, "created": iso(self.created),
                "started": _iso_or_none(self.started), "finished": _iso_or_none(self.finished),
                "error": error, "outputs": self.outputs}


@dataclasses.dataclass(frozen=True)
class StackRecord:
    """A persistent stack as the API shows it (config and outputs already masked)."""

    name: str
    program: str
    status: str
    config: dict[str, Any]
    outputs: dict[str, Any] | None
    created: float
    updated: float
    expires: float | None
    last_operation: str

    def to_json(self) -> dict[str, Any]:
        """The API's Stack shape."""
        return {"name": self.name, "program": self.program, "status": self.status,
                "config": self.config, "outputs": self.outputs, "created": iso(self.created),
                "updated": iso(self.updated), "expires": _iso_or_none(self.expires),
                "last_operation": self.last_operation}


@dataclasses.dataclass(frozen=True)
class EventRecord:
    """One event of an operation; ``seq`` counts 1, 2, 3, ... per operation."""

    operation: str
    seq: int
    time: float
    type: str
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The API's Event shape."""
        return {"seq": self.seq, "time": iso(self.time), "type": self.type, "data": self.data}


class _Duplicate(Exception):
    """A statement hit a primary key or unique index."""


class _Tx(Protocol):
    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> int: ...


def _dumps(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _operation(row: tuple[Any, ...]) -> OperationRecord:
    (id, kind, stack, program, status, created, started, finished, error_code, error_message,
     outputs) = row
    return OperationRecord(id, kind, stack, program, status, created, started, finished,
                           error_code, error_message, _loads(outputs))


def _stack(row: tuple[Any, ...]) -> StackRecord:
    name, program, status, config, outputs, created, updated, expires, last = row
    return StackRecord(name, program, status, _loads(config), _loads(outputs), created, updated,
                       expires, last)


def _cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _uncursor(after: str, types: tuple[type, ...]) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)))
    except (ValueError, binascii.Error):
        values = None
    if (not isinstance(values, list) or len(values) != len(types)
            or not all(isinstance(v, t) and _storable(v)
                       for v, t in zip(values, types, strict=True))):
        raise ParameterError("after", after[:100], "the 'next' cursor of a previous page")
    return values


def _storable(value: Any) -> bool:
    """Whether a database takes ``value`` as a query parameter (a crafted cursor may hold an
    unpaired surrogate or an integer past 64 bits)."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
    return not isinstance(value, int) or -2**63 <= value < 2**63


class Store(abc.ABC):
    """Operations, events, stacks and idempotency keys in one database (see open_store)."""

    @abc.abstractmethod
    def _transaction(self, write: bool) -> AbstractContextManager[_Tx]:
        """A transaction; ``write`` ones exclude each other (SQLite takes its write lock)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection this store opened."""

    def check(self) -> None:
        """Run a cheap query; raise StoreError when the database is unreachable."""
        with self._transaction(write=False) as tx:
            tx.rows("SELECT 1")

    # -- operations and stacks ---------------------------------------------------------
    def begin_create(self, stack: StackRecord, operation: OperationRecord) -> None:
        """Insert a stack and its first operation; ConflictError if the name is taken."""
        try:
            with self._transaction(write=True) as tx:
                tx.run("INSERT INTO burner_stacks (name, program, status, config, outputs, "
                       "created, updated, expires, last_operation) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (stack.name, stack.program, stack.status, _dumps(stack.config),
                        _dumps(stack.outputs), stack.created, stack.updated, stack.expires,
                        stack.last_operation))
                self._insert_operation(tx, operation)
        except _Duplicate:
            running = self.running_operation(stack.name)
            if running is not None and self.get_stack(stack.name) is None:
                raise self._busy(stack.name, running.id) from None
            raise ConflictError(f"stack '{stack.name}' exists") from None

    def begin_operation(self, operation: OperationRecord, stack_status: str) -> None:
        """Insert an operation on an existing, idle stack and set the stack's status.

        Raise NotFoundError for an unknown stack, ConflictError (``.operation`` naming it)
        when the stack already has a queued or running operation.
        """
        try:
            with self._transaction(write=True) as tx:
                # The update locks the stack's row: concurrent callers queue here.
                if not tx.run("UPDATE burner_stacks SET status = ?, last_operation = ? "
                              "WHERE name = ?", (stack_status, operation.id, operation.stack)):
                    raise NotFoundError(f"stack '{operation.stack}' not found")
                running = tx.rows(f"SELECT id FROM burner_operations WHERE stack = ? AND "
                                  f"{_IS_ACTIVE}", (operation.stack,))
                if running:
                    raise self._busy(operation.stack, running[0][0])
                self._insert_operation(tx, operation)
        except _Duplicate:
            raise self._busy(operation.stack, None) from None

    def record_operation(self, operation: OperationRecord) -> None:
        """Insert an operation that has no stack record (an ephemeral burn)."""
        try:
            with self._transaction(write=True) as tx:
                self._insert_operation(tx, operation)
        except _Duplicate:
            if self.get_operation(operation.id) is not None:
                raise ConflictError(f"operation '{operation.id}' exists") from None
            raise self._busy(operation.stack, None) from None

    def _busy(self, stack: str, running: str | None) -> ConflictError:
        if running is None:
            found = self.running_operation(stack)
            running = found.id if found else None
        return ConflictError(f"stack '{stack}' runs operation '{running}'", operation=running)

    @staticmethod
    def _insert_operation(tx: _Tx, op: OperationRecord) -> None:
        tx.run("INSERT INTO burner_operations (id, kind, stack, program, status, created, "
               "started, finished, error_code, error_message, outputs) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (op.id, op.kind, op.stack, op.program, op.status, op.created, op.started,
                op.finished, op.error_code, op.error_message, _dumps(op.outputs)))

    def get_operation(self, id: str) -> OperationRecord | None:
        """The operation, or None."""
        with self._transaction(write=False) as tx:
            rows = tx.rows(f"{_OPERATION} WHERE id = ?", (id,))
        return _operation(rows[0]) if rows else None

    def list_operations(self, stack: str | None, limit: int, after: str | None
                        ) -> tuple[list[OperationRecord], str | None]:
        """A page of operations (of one stack, or all), newest first, and the next cursor."""
        where: list[str] = []
        params: list[Any] = []
        if stack is not None:
            where.append("stack = ?")
            params.append(stack)
        if after is not None:
            created, last = _uncursor(after, (float, str))
            where.append("(created < ? OR (created = ? AND id < ?))")
            params += [created, created, last]
        sql = (_OPERATION + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY created DESC, id DESC LIMIT ?")
        with self._transaction(write=False) as tx:
            rows = tx.rows(sql, (*params, limit + 1))
        page = [_operation(row) for row in rows[:limit]]
        more = len(rows) > limit and page
        return page, _cursor(float(page[-1].created), page[-1].id) if more else None

    def running_operation(self, stack: str) -> OperationRecord | None:
        """The stack's queued or running operation, or None."""
        with self._transaction(write=False) as tx:
            rows = tx.rows(f"{_OPERATION} WHERE stack = ? AND {_IS_ACTIVE}", (stack,))
        return _operation(rows[0]) if rows else None

    def queued_before(self, cutoff: float) -> list[OperationRecord]:
        """Operations accepted before ``cutoff`` (epoch seconds) and still queued, oldest first."""
        with self._transaction(write=False) as tx:
            rows = tx.rows(f"{_OPERATION} WHERE status = 'queued' AND created < ? "
                           "ORDER BY created", (cutoff,))
        return [_operation(row) for row in rows]

    def start_operation(self, id: str, now: float) -> bool:
        """Move a queued operation to running; False if it was not queued."""
        with self._transaction(write=True) as tx:
            return tx.run("UPDATE burner_operations SET status = 'running', started = ? "
                          "WHERE id = ? AND status = 'queued'", (now, id)) == 1

    def finish_operation(self, id: str, status: str, now: float, error_code: str | None = None,
                         error_message: str | None = None,
                         outputs: dict[str, Any] | None = None) -> OperationRecord:
        """Give an active operation its final status and return it.

        The same transaction appends the ``status`` event that says so, so whoever reads a final
        status also finds that event. An operation that already ended keeps its first final
        status (returned unchanged); NotFoundError for an unknown id.
        """
        if status not in FINAL:
            raise ValueError(f"not a final status: {status!r}")
        event: dict[str, Any] = {"status": status}
        if error_code is not None:
            event["error"] = {"code": error_code, "message": error_message}
        with self._transaction(write=True) as tx:
            if tx.run(f"UPDATE burner_operations SET status = ?, finished = ?, error_code = ?, "
                      f"error_message = ?, outputs = ? WHERE id = ? AND {_IS_ACTIVE}",
                      (status, now, error_code, error_message, _dumps(outputs), id)):
                self._append(tx, id, "status", event, now)
            rows = tx.rows(f"{_OPERATION} WHERE id = ?", (id,))
        if not rows:
            raise NotFoundError(f"operation '{id}' not found")
        return _operation(rows[0])

    def get_stack(self, name: str) -> StackRecord | None:
        """The stack, or None."""
        with self._transaction(write=False) as tx:
            rows = tx.rows(f"{_STACK} WHERE name = ?", (name,))
        return _stack(rows[0]) if rows else None

    def list_stacks(self, program: str | None, status: str | None, limit: int,
                    after: str | None) -> tuple[list[StackRecord], str | None]:
        """A page of stacks by name, optionally of one program and status, and the next cursor."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("program", program), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if after is not None:
            where.append("name > ?")
            params += _uncursor(after, (str,))
        sql = (_STACK + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY name LIMIT ?")
        with self._transaction(write=False) as tx:
            rows = tx.rows(sql, (*params, limit + 1))
        page = [_stack(row) for row in rows[:limit]]
        return page, _cursor(page[-1].name) if len(rows) > limit and page else None

    def update_stack(self, name: str, **fields: Any) -> None:
        """Set some of a stack's fields (see STACK_FIELDS); NotFoundError for an unknown one."""
        unknown = set(fields) - set(STACK_FIELDS)
        if unknown or not fields:
            raise TypeError(f"update_stack() takes some of {STACK_FIELDS}, not {sorted(unknown)}")
        names = [name for name in STACK_FIELDS if name in fields]
        values = [_dumps(fields[n]) if n in ("config", "outputs") else fields[n] for n in names]
        with self._transaction(write=True) as tx:
            sql = f"UPDATE burner_stacks SET {', '.join(f'{n} = ?' for n in names)} WHERE name = ?"
            if not tx.run(sql, (*values, name)):
                raise NotFoundError(f"stack '{name}' not found")

    def delete_stack(self, name: str) -> None:
        """Remove the stack's record (its operations stay); no error if it is gone already."""
        with self._transaction(write=True) as tx:
            tx.run("DELETE FROM burner_stacks WHERE name = ?", (name,))

    # -- events ------------------------------------------------------------------------
    def append_event(self, operation: str, type: str, data: dict[str, Any],
                     now: float | None = None) -> EventRecord:
        """Add the operation's next event (seq 1, 2, 3, ...); NotFoundError for an unknown one."""
        with self._transaction(write=True) as tx:
            return self._append(tx, operation, type, data, time.time() if now is None else now)

    @staticmethod
    def _append(tx: _Tx, operation: str, type: str, data: dict[str, Any], when: float
                ) -> EventRecord:
        # The counter's row lock orders concurrent writers: no gaps, no duplicates.
        rows = tx.rows("UPDATE burner_operations SET last_seq = last_seq + 1 WHERE id = ? "
                       "RETURNING last_seq", (operation,))
        if not rows:
            raise NotFoundError(f"operation '{operation}' not found")
        seq = int(rows[0][0])
        tx.run("INSERT INTO burner_events (operation, seq, time, type, data) "
               "VALUES (?, ?, ?, ?, ?)", (operation, seq, when, type, json.dumps(data)))
        return EventRecord(operation, seq, when, type, data)

    def events(self, operation: str, after: int = 0, limit: int = 100) -> list[EventRecord]:
        """The operation's events with seq above ``after``, oldest first, at most ``limit``."""
        with self._transaction(write=False) as tx:
            rows = tx.rows("SELECT operation, seq, time, type, data FROM burner_events "
                           "WHERE operation = ? AND seq > ? ORDER BY seq LIMIT ?",
                           (operation, after, limit))
        return [EventRecord(op, seq, at, kind, json.loads(data))
                for op, seq, at, kind, data in rows]

    # -- idempotency and retention -----------------------------------------------------
    def claim_idempotency_key(self, key: str, request_hash: str, operation: str,
                              now: float) -> tuple[str, str] | None:
        """Store an unknown key and return None; for a known one return its (hash, operation)."""
        while True:
            with self._transaction(write=True) as tx:
                if tx.run("INSERT INTO burner_idempotency (key, request_hash, operation, created) "
                          "VALUES (?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                          (key, request_hash, operation, now)):
                    return None
                rows = tx.rows("SELECT request_hash, operation FROM burner_idempotency "
                               "WHERE key = ?", (key,))
            if rows:  # else purged between the two statements: claim again
                return rows[0][0], rows[0][1]

    def release_idempotency_key(self, key: str, operation: str) -> None:
        """Forget a key whose request was refused, so that a retry is judged afresh."""
        with self._transaction(write=True) as tx:
            tx.run("DELETE FROM burner_idempotency WHERE key = ? AND operation = ?",
                   (key, operation))

    def purge(self, older_than: float) -> int:
        """Delete final operations finished before ``older_than``, their events and older keys.

        Return how many operations went.
        """
        old = f"SELECT id FROM burner_operations WHERE {_IS_FINAL} AND finished < ?"
        with self._transaction(write=True) as tx:
            tx.run(f"DELETE FROM burner_events WHERE operation IN ({old})", (older_than,))
            gone = tx.run(f"DELETE FROM burner_operations WHERE id IN ({old})", (older_than,))
            tx.run("DELETE FROM burner_idempotency WHERE created < ?", (older_than,))
        return gone


# -- SQLite ----------------------------------------------------------------------------
class _SQLiteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.IntegrityError as exc:
            raise _Duplicate(str(exc)) from exc

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        try:
            return self._conn.execute(sql, params).rowcount
        except sqlite3.IntegrityError as exc:
            raise _Duplicate(str(exc)) from exc


class SQLiteStore(Store):
    """The store in one SQLite file (WAL): threads and processes of one host share it."""

    def __init__(self, path: Path, busy_timeout: float = SQLITE_BUSY_TIMEOUT) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._pid: int | None = None  # the process that created the schema and owns _idle

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: this class issues BEGIN itself. A connection serves one thread at
        # a time (it is checked out per transaction), so it may move between threads.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _checkout(self) -> sqlite3.Connection:
        with self._lock:
            if self._pid != os.getpid():
                # First use in this process (a forked child must not reuse its parent's).
                self._idle = []
                self._create_schema()
                self._pid = os.getpid()
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _create_schema(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            self._use_wal(conn)
            # The write lock makes processes starting at once take turns.
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        # WAL is a property of the file, set once. Switching needs every other connection
        # gone, and SQLite reports "locked" at once rather than waiting: retry until the
        # busy timeout.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                    return
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[_Tx]:
        try:
            conn = self._checkout()
        except (sqlite3.Error, OSError) as exc:
            raise self._error(exc) from exc
        healthy = True
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield _SQLiteTx(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            healthy = False
            raise self._error(exc) from exc
        finally:
            if healthy:
                with self._lock:
                    self._idle.append(conn)
            else:
                conn.close()  # rolls back whatever is left open

    def _error(self, exc: BaseException) -> StoreError:
        return StoreError(f"cannot use the operation store {self.path}: {exc}")

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


# -- PostgreSQL ------------------------------------------------------------------------
def _pg(sql: str) -> bytes:
    return sql.replace("?", "%s").encode()


_APPEND_EVENT = _pg(
    "WITH counter AS (UPDATE burner_operations SET last_seq = last_seq + 1 WHERE id = ? "
    "RETURNING id, last_seq) "
    "INSERT INTO burner_events (operation, seq, time, type, data) "
    "SELECT id, last_seq, ?, ?, ? FROM counter RETURNING seq")


class _PostgresTx:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(_pg(sql), params).fetchall()

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        import psycopg

        try:
            return self._conn.execute(_pg(sql), params).rowcount
        except psycopg.errors.UniqueViolation as exc:
            raise _Duplicate(str(exc)) from exc


def libpq_conninfo(url: str) -> str:
    """The URL as libpq takes it: scheme postgresql, query parameters libpq knows only."""
    import psycopg

    known = {option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults()}
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k in known]
    return urlunsplit(parts._replace(scheme="postgresql", query=urlencode(query)))


class PostgresStore(Store):
    """The store in PostgreSQL (a connection pool per process): a fleet shares it."""

    # Any constant: it only has to be the same in every process creating the tables.
    _SCHEMA_LOCK = 0x6275726E6572

    def __init__(self, url: str, timeout: float = CONNECT_TIMEOUT,
                 max_connections: int = POOL_SIZE) -> None:
        self.display_url = redact_url(url)
        self.timeout = timeout
        self.max_connections = max_connections
        self._conninfo = libpq_conninfo(url)
        self._password = urlsplit(url).password
        self._lock = threading.Lock()
        self._pool: ConnectionPool | None = None
        self._pid: int | None = None

    def _connections(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                import psycopg
                from psycopg_pool import ConnectionPool

                kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": max(1, round(self.timeout))}
                # A direct connection first: it reports why it fails (the pool only times out).
                with psycopg.connect(self._conninfo, **kwargs) as conn, conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._SCHEMA_LOCK,))
                    for statement in _SCHEMA:
                        conn.execute(statement.encode())
                pool = ConnectionPool(self._conninfo, min_size=1, max_size=self.max_connections,
                                      kwargs=kwargs, timeout=self.timeout, open=False,
                                      name="burner-store")
                pool.open(wait=False)
                self._pool, self._pid = pool, os.getpid()
            return self._pool

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[_Tx]:
        import psycopg

        try:
            with self._connections().connection() as conn, conn.transaction():
                yield _PostgresTx(conn)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self._error(exc) from None

    def append_event(self, operation: str, type: str, data: dict[str, Any],
                     now: float | None = None) -> EventRecord:
        """Add the operation's next event (seq 1, 2, 3, ...); NotFoundError for an unknown one.

        One statement, so one round trip instead of four (begin, count, insert, commit): the
        counter's row lock still orders concurrent writers, within the statement's transaction.
        """
        import psycopg

        when = time.time() if now is None else now
        try:
            with self._connections().connection() as conn:
                rows = conn.execute(_APPEND_EVENT, (operation, when, type, json.dumps(data))
                                    ).fetchall()
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self._error(exc) from None
        if not rows:
            raise NotFoundError(f"operation '{operation}' not found")
        return EventRecord(operation, int(rows[0][0]), when, type, data)

    def _error(self, exc: BaseException) -> StoreError:
        text = str(exc).strip()
        message = text.splitlines()[0] if text else type(exc).__name__
        if self._password:
            message = message.replace(self._password, "***")
        return StoreError(f"cannot use the operation store {self.display_url}: {message}")

    def close(self) -> None:
        """Close the pool (this process's)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.close()


def open_store(settings: Settings, timeout: float = CONNECT_TIMEOUT) -> Store:
    """The store for these settings: PostgreSQL for a postgres:// backend, else SQLite.

    Nothing connects before the first call.
    """
    backend = settings.backend or ""
    if urlsplit(backend).scheme in ("postgres", "postgresql"):
        log.debug("operation store: %s", redact_url(backend))
        return PostgresStore(backend, timeout=timeout)
    return SQLiteStore(settings.state_dir / "operations.db")
