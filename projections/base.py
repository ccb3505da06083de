"""What every projection is: the events it handles, its tables, and how it applies a batch.

A projection applies a batch of events inside the runner's write transaction,
which also moves its position: rows and position commit together or not at all.
Within a batch a projection loads the rows the batch touches with one query per
table, applies every event to those in-memory rows (its ``evolve``), and writes
them back with one ``executemany`` per statement: no round trip per event.

Times are stored as integer microseconds since the epoch (UTC): exact, compact,
and ordered the same way in SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import binascii
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

from contracts.events import AnyEvent, Event
from contracts.replies import ErrorCode
from projections.db import Tx

Batch = Sequence[tuple[int, AnyEvent]]
"""Events with their stream sequences, in stream order."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class ProjectionError(Exception):
    """An event the projection cannot apply (it names something the read model never saw)."""


class Projection(ABC):
    """One read model: the question it answers, the events it needs, its tables."""

    name: ClassVar[str]
    version: ClassVar[int]
    """Schema version: a stored read model of another version is dropped and rebuilt."""
    handles: ClassVar[frozenset[type[Event]]]
    tables: ClassVar[tuple[str, ...]]
    schema: ClassVar[tuple[str, ...]]
    """DDL creating the tables and indexes (portable, idempotent)."""

    def handles_type(self, type_name: str) -> bool:
        """Whether an event type (by name) concerns this projection."""
        return any(kind.__name__ == type_name for kind in self.handles)

    @abstractmethod
    def apply(self, tx: Tx, events: Batch, *, strict: bool) -> None:
        """Apply events (only of handled types) in the caller's transaction.

        ``strict`` is off when the read model was rebuilt from a later sequence than
        the stream's first: events about members or InMails first seen before that
        sequence are then expected and left out; otherwise they are an error.
        """


Row = TypeVar("Row")


class Touched(Generic[Row]):
    """The rows of one table a batch touches, by key: loaded with one query, changed in
    memory by the batch's events, written back with one insert and one update statement.
    """

    def __init__(self, rows: dict[str, Row], *, strict: bool, noun: str, unknown: str) -> None:
        self.rows = rows
        self.strict = strict
        self.new: set[str] = set()
        self.changed: set[str] = set()
        self._noun = noun
        self._unknown = unknown

    def create(self, key: str, row: Row, verb: str) -> Row:
        """A row the event brings into being; its key must be new to the read model."""
        if key in self.rows:
            raise ProjectionError(f"{self._noun} {key} {verb} twice")
        self.rows[key] = row
        self.new.add(key)
        return row

    def existing(self, key: str, event: Event) -> Row | None:
        """The row an event changes; None (strict: an error) when the read model never saw it."""
        row = self.rows.get(key)
        if row is None:
            if self.strict:
                raise ProjectionError(f"{type(event).__name__} {self._unknown} {key}")
            return None
        self.changed.add(key)
        return row

    def write_back(
        self,
        tx: Tx,
        insert: str,
        update: str,
        values: Callable[[Row], Sequence[Any]],
        changes: Callable[[Row], Sequence[Any]],
    ) -> None:
        """Insert the new rows, update the changed ones."""
        tx.executemany(insert, [values(self.rows[key]) for key in self.new])
        tx.executemany(update, [changes(self.rows[key]) for key in self.changed - self.new])


def load_rows(tx: Tx, sql: str, keys: set[str], make: Callable[..., Row]) -> dict[str, Row]:
    """The rows of ``sql`` (its ``{keys}`` placeholder, key in the first column) by key."""
    return {row[0]: make(*row) for row in tx.fetch_in(sql, keys)}


def to_us(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch."""
    # Whole seconds from the float timestamp are exact for any realistic date; the
    # microseconds come from the field, so no float rounding reaches them.
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def duration_us(duration: timedelta) -> int:
    """A duration as whole microseconds."""
    return duration // _MICROSECOND


def from_us(us: int) -> datetime:
    """Integer microseconds since the epoch as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=us)


def maybe_from_us(us: int | None) -> datetime | None:
    """``from_us`` that lets None through."""
    return None if us is None else from_us(us)


def encode_cursor(kind: str, *numbers: int) -> str:
    """An opaque page cursor: the query kind and the sort key of the last item shown."""
    text = ":".join([kind, *(str(n) for n in numbers)])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, count: int) -> tuple[int, ...] | None:
    """The sort key inside a cursor of this kind, or None when it is not one."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    parts = text.split(":")
    if len(parts) != count + 1 or parts[0] != kind:
        return None
    try:
        return tuple(int(part) for part in parts[1:])
    except ValueError:
        return None


class QueryFailure(Exception):
    """A query the read model answers with a failure reply (unknown member, bad cursor)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        self.code: ErrorCode = code
        self.message = message
        super().__init__(message)
