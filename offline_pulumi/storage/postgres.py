"""The ``postgres://`` driver: the Pulumi CLI's PostgreSQL blob table, shared by many hosts.

Same table and row format as the CLI's driver (``pkg/backend/diy/postgres``): one row per key,
``data`` a JSON object ``{"data": "<base64 of the blob>"}``, and the URL's path (the database
name) as a key prefix, as the CLI's DIY backend does for every non-``file://`` bucket.
"""

from __future__ import annotations

import atexit
import base64
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from offline_pulumi.storage import BlobNotFound, StorageError, redact_url

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

DEFAULT_TABLE = "pulumi_state"
CONNECT_TIMEOUT = 10.0
# A table name goes into SQL text (it cannot be a parameter): allow plain identifiers only.
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
_SCHEMA = """\
CREATE TABLE IF NOT EXISTS {t} (
    key TEXT PRIMARY KEY,
    data JSON NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {i}_key_prefix_idx ON {t} (key text_pattern_ops);
"""


class PostgresStorage:
    """Blobs as rows of one table; every statement is a single autocommitted round trip."""

    def __init__(self, conninfo: str, table: str, prefix: str, display_url: str,
                 timeout: float = CONNECT_TIMEOUT, max_connections: int = 2) -> None:
        self.table = table
        self.timeout = timeout
        self.max_connections = max_connections
        self.prefix = prefix
        self.display_url = display_url
        self._conninfo = conninfo
        self._pool: ConnectionPool | None = None

    @classmethod
    def from_url(cls, url: str, timeout: float | None = None,
                 max_connections: int = 2) -> PostgresStorage:
        """Parse ``postgres://user:pw@host:port/db?sslmode=...&table=...``."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        table = next((v for k, v in query if k == "table"), "") or DEFAULT_TABLE
        if not _TABLE.match(table):
            raise StorageError(f"invalid table name '{table}' in the backend URL "
                               f"{redact_url(url)}")
        conninfo = urlunsplit(parts._replace(scheme="postgresql",
                                             query=urlencode([(k, v) for k, v in query
                                                              if k != "table"])))
        database = parts.path.strip("/")
        return cls(conninfo, table, f"{database}/" if database else "", redact_url(url),
                   timeout or CONNECT_TIMEOUT, max_connections)

    # -- connections -------------------------------------------------------------------
    def _connections(self) -> ConnectionPool:
        if self._pool is None:
            from psycopg_pool import ConnectionPool

            # At least two: the advisory lock of exclusive() holds one while the lock
            # protocol's statements run on another.
            pool = ConnectionPool(self._conninfo, min_size=1, max_size=self.max_connections,
                                  open=False,
                                  kwargs={"autocommit": True}, timeout=self.timeout,
                                  name="offline-pulumi-state")
            try:
                pool.open(wait=True, timeout=self.timeout)
            except Exception as exc:  # psycopg_pool.PoolTimeout or a libpq error
                pool.close()
                raise self._error("cannot connect to", exc) from None
            atexit.register(pool.close)
            self._pool = pool
            self._ensure_table()
        return self._pool

    def _ensure_table(self) -> None:
        import psycopg

        exists = self._query("SELECT to_regclass(%s)", (self.table,))
        if exists and exists[0][0] is not None:
            return
        try:
            self._query(_SCHEMA.format(t=self.table, i=self.table.replace(".", "_")), ())
        except StorageError as exc:
            # Two engines creating the table at once: the loser's CREATE collides; fine.
            if not isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                raise

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            with self._connections().connection() as conn:
                cursor = conn.execute(sql.encode(), params)
                return cursor.fetchall() if cursor.description else [(cursor.rowcount,)]
        except psycopg.Error as exc:
            raise self._error("error from", exc) from exc

    def _error(self, what: str, exc: BaseException) -> StorageError:
        # libpq messages name host, port and user but never the password; strip it anyway.
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        password = urlsplit(self._conninfo).password
        if password:
            message = message.replace(password, "***")
        return StorageError(f"{what} the state database {self.display_url}: {message}")

    # -- the storage interface ---------------------------------------------------------
    def get(self, key: str) -> bytes:
        """The blob's bytes; raise BlobNotFound if there is no row."""
        rows = self._query(f"SELECT data FROM {self.table} WHERE key = %s", (self.prefix + key,))
        if not rows:
            raise BlobNotFound(key)
        return decode_row(rows[0][0])

    def put(self, key: str, data: bytes) -> None:
        """Insert or replace the row (one statement: atomic)."""
        self._query(f"INSERT INTO {self.table} (key, data) VALUES (%s, %s) ON CONFLICT (key) "
                    "DO UPDATE SET data = EXCLUDED.data, updated_at = now()",
                    (self.prefix + key, encode_row(data)))

    def ensure(self, key: str, data: bytes) -> None:
        """Insert the row unless there is one (one statement)."""
        self._query(f"INSERT INTO {self.table} (key, data) VALUES (%s, %s) "
                    "ON CONFLICT (key) DO NOTHING", (self.prefix + key, encode_row(data)))

    def list(self, prefix: str, delimiter: str | None = None) -> list[str]:
        """Keys under ``prefix`` (a LIKE on the key index), the delimiter applied here."""
        full = self.prefix + prefix
        # The CLI's driver leaves % and _ unescaped (stack names may hold _); escape them.
        pattern = re.sub(r"([\\%_])", r"\\\1", full) + "%"
        rows = self._query(f"SELECT key FROM {self.table} WHERE key LIKE %s ORDER BY key",
                           (pattern,))
        keys: list[str] = []
        for (key,) in rows:
            rest = key[len(full):]
            if delimiter and delimiter in rest:
                directory = prefix + rest[: rest.index(delimiter) + len(delimiter)]
                if not keys or keys[-1] != directory:
                    keys.append(directory)
            else:
                keys.append(key[len(self.prefix):])
        return keys

    def copy(self, src: str, dst: str) -> None:
        """Copy the row inside the database; raise BlobNotFound if ``src`` has none."""
        rows = self._query(f"INSERT INTO {self.table} (key, data) SELECT %s, data FROM "
                           f"{self.table} WHERE key = %s ON CONFLICT (key) DO UPDATE SET "
                           "data = EXCLUDED.data, updated_at = now()",
                           (self.prefix + dst, self.prefix + src))
        if rows[0][0] == 0:
            raise BlobNotFound(src)

    def delete(self, *keys: str) -> None:
        """Delete the rows there are, in one statement (each statement commits: a flush)."""
        if keys:
            self._query(f"DELETE FROM {self.table} WHERE key = ANY(%s)",
                        ([self.prefix + key for key in keys],))

    def remove_empty(self, prefix: str) -> None:
        """Rows have no directories: nothing is left behind."""

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold a session advisory lock on ``name`` (released by the server if we die)."""
        import psycopg

        key = self.table + ":" + self.prefix + name
        try:
            with self._connections().connection() as conn:
                conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
                try:
                    yield
                finally:
                    conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
        except psycopg.Error as exc:
            raise self._error("error from", exc) from exc

    def location(self, key: str) -> str:
        """The URL (no credentials) and the row's key."""
        return f"{self.display_url}#{self.prefix}{key}"

    def check(self) -> None:
        """Raise StorageError unless the database answers."""
        self._query("SELECT 1", ())

    def close(self) -> None:
        """Close the pool's connections."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def encode_row(data: bytes) -> str:
    """The ``data`` column of a blob, byte-for-byte as the CLI's driver (Go json.Marshal) writes it."""
    return '{"data":"' + base64.b64encode(data).decode() + '"}'


def decode_row(value: Any) -> bytes:
    """The blob held by a ``data`` column value (text or parsed JSON)."""
    return base64.b64decode((json.loads(value) if isinstance(value, str) else value)["data"])
