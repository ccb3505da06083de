"""Quarantined events: stored events the read models could not read, passed over and recorded.

An event on ``INMAIL_EVENTS`` that cannot be decoded (a type this code does not
know, fields it cannot read) stops nothing: each projection records it here,
in the transaction that moves its position past it, and goes on. An
``EventSkipped`` (an operator's decision, ``inmail quarantine resolve SEQ --skip``)
marks it resolved. A replay clears a projection's records with its rows and
records them again as it meets the events: the same every time.

A readable event that a projection cannot *apply* is another matter: the
projection stops there (``projections.writer``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from contracts.events import AnyEvent, EventSkipped, decode_event
from contracts.queries import QuarantinedEvent
from contracts.validation import explain_event
from projections.db import Tx

DDL = (
    "CREATE TABLE IF NOT EXISTS quarantined_events ("
    " name TEXT NOT NULL, seq BIGINT NOT NULL, subject TEXT NOT NULL, error TEXT NOT NULL,"
    " skipped_seq BIGINT, PRIMARY KEY (name, seq))"
)


def record(tx: Tx, name: str, unreadable: Sequence[tuple[int, str, str]]) -> None:
    """Record (seq, subject, error) of events projection ``name`` passed over."""
    tx.executemany(
        "INSERT INTO quarantined_events (name, seq, subject, error) VALUES (?, ?, ?, ?)",
        [(name, seq, subject, error) for seq, subject, error in unreadable],
    )


def resolve(tx: Tx, name: str, skips: Sequence[tuple[int, int]]) -> None:
    """Mark events resolved: (the skipped event's seq, the seq of the ``EventSkipped``)."""
    tx.executemany(
        "UPDATE quarantined_events SET skipped_seq = ? WHERE name = ? AND seq = ?",
        [(skip_seq, name, seq) for seq, skip_seq in skips],
    )


def clear(tx: Tx, name: str) -> None:
    """Forget what projection ``name`` recorded (it is being rebuilt)."""
    tx.execute("DELETE FROM quarantined_events WHERE name = ?", (name,))


def unresolved(tx: Tx, names: Sequence[str]) -> list[QuarantinedEvent]:
    """Events any of ``names`` passed over that no operator skipped yet, oldest first."""
    rows = tx.fetch_in(
        "SELECT DISTINCT seq, subject, error FROM quarantined_events"
        " WHERE skipped_seq IS NULL AND name IN ({keys})",
        names,
    )
    return [QuarantinedEvent(int(seq), subject, error) for seq, subject, error in sorted(rows)]


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A stored message that is not an event this code can read."""

    subject: str
    error: str


Decoded = AnyEvent | Unreadable


def decode(subject: str, data: bytes) -> Decoded:
    """The event a stored message holds, or why it cannot be read."""
    try:
        return decode_event(data)
    except Exception as exc:
        return Unreadable(subject, explain_event(data, exc).splitlines()[0])


def sort(
    decoded: list[tuple[int, Decoded]],
) -> tuple[list[tuple[int, AnyEvent]], list[tuple[int, str, str]], list[tuple[int, int]]]:
    """The readable events; the unreadable ones as (seq, subject, error); the skips recorded as
    (skipped seq, seq of the record)."""
    events: list[tuple[int, AnyEvent]] = []
    unreadable: list[tuple[int, str, str]] = []
    skips: list[tuple[int, int]] = []
    for seq, event in decoded:
        if type(event) is Unreadable:
            unreadable.append((seq, event.subject, event.error))
            continue
        events.append((seq, cast(AnyEvent, event)))
        if type(event) is EventSkipped:
            skips.append((event.seq, seq))
    return events, unreadable, skips
