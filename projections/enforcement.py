"""EnforcementStatus: each sender's stage under the response-rate floor and the latest assessment.

Handles ``MemberRegistered`` (every member starts ``ok``, with no assessment),
``ResponseRateAssessed`` (the stage it leads to and its inputs) and
``BulkSuspensionEnded`` (``ok`` again from the suspension's end). Everything comes
from the events' own fields, decided from event times, so a replay gives the same
answer. Answered from this read model rather than the aggregate: queries read
the read side only, and ``min_seq`` makes a client read its own writes here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import ClassVar, cast

from contracts.events import BulkSuspensionEnded, Event, MemberRegistered, ResponseRateAssessed, Stage
from contracts.queries import EnforcementStatus, EnforcementStatusData
from projections.base import Batch, Projection, QueryFailure, Touched, load_rows, maybe_from_us, to_us
from projections.db import Tx

_COLUMNS = (
    "member_id, stage, since, until, period_start, period_end, sent, responded, rate, threshold"
)


@dataclass(slots=True)
class StageRow:
    """A member's stage and the latest assessment; times in microseconds."""

    member_id: str
    stage: str = "ok"
    since: int | None = None
    until: int | None = None
    period_start: int | None = None
    period_end: int | None = None
    sent: int | None = None
    responded: int | None = None
    rate: float | None = None
    threshold: float | None = None


_values = attrgetter(*(name.strip() for name in _COLUMNS.split(",")))
_changes = attrgetter(*(name.strip() for name in _COLUMNS.split(",")[1:]), "member_id")


def evolve(view: Touched[StageRow], seq: int, event: Event) -> None:
    """Apply one event to the batch's rows."""
    match event:
        case MemberRegistered():
            view.create(event.member_id, StageRow(event.member_id), "registered")
        case ResponseRateAssessed():
            if (row := view.existing(event.member_id, event)) is not None:
                row.stage = event.stage
                row.since = None if event.since is None else to_us(event.since)
                row.until = None if event.until is None else to_us(event.until)
                row.period_start, row.period_end = to_us(event.period_start), to_us(event.period_end)
                row.sent, row.responded = event.sent, event.responded
                row.rate, row.threshold = event.rate, event.threshold
        case BulkSuspensionEnded():
            if (row := view.existing(event.member_id, event)) is not None:
                row.stage, row.since, row.until = "ok", to_us(event.until), None


class EnforcementProjection(Projection):
    """One row per member: the stage and the latest assessment behind it."""

    name = "enforcement"
    version = 1
    handles: ClassVar[frozenset[type[Event]]] = frozenset(
        {MemberRegistered, ResponseRateAssessed, BulkSuspensionEnded}
    )
    tables = ("enforcement_stages",)
    schema = (
        "CREATE TABLE IF NOT EXISTS enforcement_stages ("
        " member_id TEXT PRIMARY KEY, stage TEXT NOT NULL, since BIGINT, until BIGINT,"
        " period_start BIGINT, period_end BIGINT, sent INTEGER, responded INTEGER,"
        " rate DOUBLE PRECISION, threshold DOUBLE PRECISION) WITHOUT ROWID",
    )

    def apply(self, tx: Tx, events: Batch, *, strict: bool) -> None:
        """Load the members the batch assesses, evolve, write back."""
        registered_here = {e.member_id for _, e in events if isinstance(e, MemberRegistered)}
        wanted = {
            e.member_id for _, e in events if isinstance(e, ResponseRateAssessed | BulkSuspensionEnded)
        } - registered_here
        loaded = load_rows(
            tx, f"SELECT {_COLUMNS} FROM enforcement_stages WHERE member_id IN ({{keys}})", wanted, StageRow
        )
        view = Touched(loaded, strict=strict, noun="member", unknown="for unknown member")
        for seq, event in events:
            evolve(view, seq, event)
        view.write_back(
            tx,
            f"INSERT INTO enforcement_stages ({_COLUMNS}) VALUES ({', '.join('?' * 10)})",
            "UPDATE enforcement_stages SET stage = ?, since = ?, until = ?, period_start = ?,"
            " period_end = ?, sent = ?, responded = ?, rate = ?, threshold = ? WHERE member_id = ?",
            _values,
            _changes,
        )


def query(tx: Tx, q: EnforcementStatus) -> EnforcementStatusData:
    """A member's stage and latest assessment; ``ok`` and nulls before any."""
    row = tx.fetchone(f"SELECT {_COLUMNS} FROM enforcement_stages WHERE member_id = ?", (q.member_id,))
    if row is None:
        raise QueryFailure("UNKNOWN_MEMBER", f"unknown member {q.member_id}")
    stage = StageRow(*row)
    return EnforcementStatusData(
        stage=cast(Stage, stage.stage),
        since=maybe_from_us(stage.since),
        until=maybe_from_us(stage.until),
        period_start=maybe_from_us(stage.period_start),
        period_end=maybe_from_us(stage.period_end),
        sent=stage.sent,
        responded=stage.responded,
        rate=stage.rate,
        threshold=stage.threshold,
    )
