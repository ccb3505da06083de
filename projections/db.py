"""Read-model stores: a SQLite file (default) or PostgreSQL, behind one thin dialect layer.

Projection code writes portable SQL with ``?`` placeholders and runs it through a
``Tx``; the dialect translates placeholders and the few statements that differ
(how a transaction begins, how a table is emptied, SQLite's ``WITHOUT ROWID``). Connections are synchronous
and used from worker threads: the runner keeps one writer session, queries use
reader sessions, and the event loop never blocks on the database.

Store URLs:

- ``sqlite:///<path>``: the file at ``<path>`` (relative or, with a fourth slash,
  absolute); created with its folder when missing.
- ``postgresql://user@host:port/db`` (or ``postgres://``), any libpq URI; an
  extra ``schema=<name>`` query parameter keeps the tables in that schema
  (created when missing), so several read stores can share one database.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    import psycopg

Row = tuple[Any, ...]
Params = Sequence[Any]

_IN_CHUNK = 500
"""Keys per ``IN (...)`` list: far below SQLite's and PostgreSQL's parameter limits."""

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class StoreError(Exception):
    """The read-model store is misconfigured or cannot be opened."""


@dataclass(frozen=True, slots=True)
class StoreUrl:
    """A parsed store URL."""

    dialect: Literal["sqlite", "postgresql"]
    target: str
    """The SQLite file path, or the libpq connection URI without our own parameters."""
    schema: str | None = None


def parse_store_url(url: str) -> StoreUrl:
    """Parse ``sqlite:///path`` or ``postgresql://…[?schema=name]``; raises StoreError."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if not path or path == ":memory:":
            raise StoreError(f"store URL {url!r} needs a file path: sqlite:///path/to/file.db")
        return StoreUrl("sqlite", path)
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((value for key, value in query if key == "schema"), None)
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise StoreError(f"schema {schema!r} is not a plain SQL identifier")
        rest = urlencode([(key, value) for key, value in query if key != "schema"])
        return StoreUrl("postgresql", urlunsplit(parts._replace(query=rest)), schema)
    raise StoreError(f"unsupported store URL {url!r}: use sqlite:///path or postgresql://…")


class Tx:
    """A connection inside one transaction; SQL is written with ``?`` placeholders."""

    __slots__ = ("_conn", "_dialect", "_sql")

    def __init__(self, conn: Any, dialect: Dialect) -> None:
        self._conn = conn
        self._dialect = dialect
        self._sql: dict[str, str] = {}

    @property
    def dialect(self) -> str:
        return self._dialect.name

    def _prepare(self, sql: str) -> str:
        native = self._sql.get(sql)
        if native is None:
            native = self._sql[sql] = self._dialect.translate(sql)
        return native

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed."""
        cursor = self._conn.execute(self._prepare(sql), params)
        count: int = cursor.rowcount
        return count

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        """Run one statement for every row of parameters (one call, not one round trip each)."""
        if rows:
            self._dialect.executemany(self._conn, self._prepare(sql), rows)

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row a query returns."""
        rows: list[Row] = self._conn.execute(self._prepare(sql), params).fetchall()
        return rows

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row a query returns, or None."""
        row: Row | None = self._conn.execute(self._prepare(sql), params).fetchone()
        return row

    def fetch_in(self, sql: str, keys: Iterable[Any]) -> list[Row]:
        """Rows of ``sql`` whose ``{keys}`` placeholder becomes ``IN (…)`` over ``keys``, chunked."""
        wanted = list(keys)
        rows: list[Row] = []
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start:start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows.extend(self.fetchall(sql.replace("{keys}", marks), chunk))
        return rows

    def clear(self, table: str) -> None:
        """Remove every row of a table."""
        self.execute(self._dialect.clear_sql(table))

    def lock_schema(self) -> None:
        """Serialise schema changes among workers sharing the store, until this transaction ends."""
        if self._dialect.schema_lock_sql:
            self.execute(self._dialect.schema_lock_sql)


class Dialect(Protocol):
    name: str
    schema_lock_sql: str

    def translate(self, sql: str) -> str: ...

    def executemany(self, conn: Any, sql: str, rows: Sequence[Params]) -> None: ...

    def clear_sql(self, table: str) -> str: ...


class Session:
    """One connection, used by one thread at a time: write and read transactions."""

    def __init__(self, conn: Any, dialect: SqliteDialect | PostgresDialect) -> None:
        self._conn = conn
        self._dialect = dialect

    @property
    def dialect(self) -> str:
        return self._dialect.name

    @contextlib.contextmanager
    def write(self) -> Iterator[Tx]:
        """A read-write transaction: committed when the block ends, rolled back on any error."""
        with self._transaction(self._dialect.begin_write) as tx:
            yield tx

    @contextlib.contextmanager
    def read(self) -> Iterator[Tx]:
        """A read-only transaction: one consistent snapshot for every statement in it."""
        with self._transaction(self._dialect.begin_read) as tx:
            yield tx

    @contextlib.contextmanager
    def _transaction(self, begin: str) -> Iterator[Tx]:
        self._conn.execute(begin)
        try:
            yield Tx(self._conn, self._dialect)
        except BaseException:
            with contextlib.suppress(Exception):
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()


class SqliteDialect:
    name = "sqlite"
    begin_write = "BEGIN IMMEDIATE"
    """Take the write lock at once: a deferred transaction could fail to upgrade later."""
    begin_read = "BEGIN"
    schema_lock_sql = ""
    """BEGIN IMMEDIATE already excludes every other writer."""

    def translate(self, sql: str) -> str:
        return sql

    def executemany(self, conn: Any, sql: str, rows: Sequence[Params]) -> None:
        conn.executemany(sql, rows)

    def clear_sql(self, table: str) -> str:
        return f"DELETE FROM {table}"

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and (
            "locked" in str(exc) or "busy" in str(exc)
        )

    def connect(self, url: StoreUrl) -> Session:
        path = Path(url.target)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            # WAL: queries read a snapshot while the runner writes. synchronous=NORMAL
            # may lose the last commits on power loss but never tears one; a lost commit
            # takes its position with it, and the events are simply applied again.
            # Bigger pages: fewer of them to write per commit (measured ~10% faster rebuilds).
            # Only takes effect when the file is created.
            conn.execute("PRAGMA page_size=16384")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA temp_store=MEMORY")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {path}: {exc}") from exc
        return Session(conn, self)


class PostgresDialect:
    name = "postgresql"
    begin_write = "BEGIN"
    begin_read = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    schema_lock_sql = "SELECT pg_advisory_xact_lock(7369717050)"
    """Concurrent CREATE TABLE IF NOT EXISTS can still collide in PostgreSQL's catalogue."""

    def translate(self, sql: str) -> str:
        if "%" in sql:
            raise ValueError(f"portable SQL must not contain '%': {sql}")
        # A SQLite storage hint (one B-tree for small rows); PostgreSQL has no rowid to drop.
        return sql.replace("?", "%s").replace(" WITHOUT ROWID", "")

    def executemany(self, conn: Any, sql: str, rows: Sequence[Params]) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(sql, rows)

    def clear_sql(self, table: str) -> str:
        return f"TRUNCATE {table}"

    def is_transient(self, exc: BaseException) -> bool:
        import psycopg

        return isinstance(exc, psycopg.OperationalError)

    def connect(self, url: StoreUrl) -> Session:
        import psycopg

        try:
            # Autocommit mode: the session issues BEGIN/COMMIT itself, like SQLite's.
            conn: psycopg.Connection[Row] = psycopg.connect(
                url.target,
                autocommit=True,
                # Says in pg_stat_activity whose connection this is, and for which schema.
                application_name=f"inmail-projections:{url.schema or 'public'}",
            )
            if url.schema:
                with contextlib.suppress(psycopg.errors.UniqueViolation):
                    # Two workers creating the schema at once: one of them loses, harmlessly.
                    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{url.schema}"')
                conn.execute(f'SET search_path TO "{url.schema}"')
        except psycopg.Error as exc:
            raise StoreError(f"cannot open PostgreSQL store: {exc}".splitlines()[0]) from exc
        return Session(conn, self)


class Database:
    """Opens sessions on one store; knows its dialect."""

    def __init__(self, url: str) -> None:
        self.url = parse_store_url(url)
        self.dialect: SqliteDialect | PostgresDialect = (
            SqliteDialect() if self.url.dialect == "sqlite" else PostgresDialect()
        )
        self._sessions: list[Session] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def connect(self) -> Session:
        """A new session; closed with the database."""
        session = self.dialect.connect(self.url)
        with self._lock:
            self._sessions.append(session)
        return session

    def thread_session(self) -> Session:
        """This thread's own session (SQLite and psycopg connections are not shared across threads)."""
        session: Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self.connect()
        return session

    def drop_thread_session(self) -> None:
        """Forget this thread's session after a connection failure; the next use reconnects."""
        session: Session | None = getattr(self._local, "session", None)
        if session is not None:
            self._local.session = None
            session.close()
            with self._lock, contextlib.suppress(ValueError):
                self._sessions.remove(session)

    def is_transient(self, exc: BaseException) -> bool:
        """An error worth retrying later (a lock held elsewhere, a lost or refused connection)."""
        # StoreError here can only come from connecting: a bad URL fails when it is parsed.
        return isinstance(exc, StoreError) or self.dialect.is_transient(exc)

    def close(self) -> None:
        """Close every session opened on this database."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
