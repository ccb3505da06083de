"""Response statistics: how often InMails are read and answered, by sender, tier, kind, template, time.

Handles ``InMailSent``, ``InMailRead``, ``InMailReplied``, ``InMailDeclined`` and
``CreditRefunded``: one row per InMail with its sender, the sender's tier when it
was sent, kind, template and sent time, and what became of it. A response is a
reply or a decline, counted once per InMail however many there were;
``responded_30d`` means the first response came within the policy's statistics
window (30 days in policy v1) of sending. Rates are fractions of all InMails
sent, free ones included; 0.0 when nothing matches. ``since`` is inclusive and
``until`` exclusive, both on the sent time, so adjacent windows never count an
InMail twice.
A scheduled InMail counts from its delivery (its ``InMailSent``); the refund of one
cancelled before delivery is no refund of anything sent and is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import ClassVar

from contracts.events import (
    CreditRefunded,
    Event,
    InMailDeclined,
    InMailRead,
    InMailReplied,
    InMailSent,
)
from contracts.policy import policy
from contracts.queries import ResponseStats, ResponseStatsData
from projections.base import Batch, Projection, Touched, duration_us, load_rows, to_us
from projections.db import Tx

_COLUMNS = (
    "inmail_id, sender_id, sender_tier, kind, template_id, policy, sent_at, charged, was_read,"
    " replied, declined, responded_at, responded_30d, refunded"
)


@dataclass(slots=True)
class StatsRow:
    """What became of one InMail; times in microseconds."""

    inmail_id: str
    sender_id: str
    sender_tier: str
    kind: str
    template_id: str | None
    policy: int
    sent_at: int
    charged: int
    was_read: int = 0
    replied: int = 0
    declined: int = 0
    responded_at: int | None = None
    responded_30d: int = 0
    refunded: int = 0

    def respond(self, at_us: int) -> None:
        """Record a response; only the first one sets the response time."""
        if self.responded_at is None:
            self.responded_at = at_us
            window = policy(self.policy).stats_response_window
            self.responded_30d = int(at_us - self.sent_at <= duration_us(window))


# C-level getters: building the rows' parameter tuples is on the rebuild's hot path.
_values = attrgetter(*(name.strip() for name in _COLUMNS.split(",")))
_changes = attrgetter(
    "was_read", "replied", "declined", "responded_at", "responded_30d", "refunded", "inmail_id"
)
_RESPONSES = (InMailRead, InMailReplied, InMailDeclined, CreditRefunded)


def evolve(view: Touched[StatsRow], seq: int, event: Event) -> None:
    """Apply one event to the batch's rows."""
    match event:
        case InMailSent():
            sent = StatsRow(
                inmail_id=event.inmail_id,
                sender_id=event.sender_id,
                sender_tier=event.sender_tier,
                kind=event.kind,
                template_id=event.template_id,
                policy=event.policy,
                sent_at=to_us(event.occurred_at),
                charged=int(event.charged),
            )
            view.create(event.inmail_id, sent, "sent")
        case InMailRead():
            if (row := view.existing(event.inmail_id, event)) is not None:
                row.was_read = 1
        case InMailReplied():
            if (row := view.existing(event.inmail_id, event)) is not None:
                row.replied = 1
                row.respond(to_us(event.occurred_at))
        case InMailDeclined():
            if (row := view.existing(event.inmail_id, event)) is not None:
                row.declined = 1
                row.respond(to_us(event.occurred_at))
        case CreditRefunded() if event.reason == "response":
            # A cancelled scheduled InMail's refund is no response to anything ever sent.
            if (row := view.existing(event.inmail_id, event)) is not None:
                row.refunded = 1


class ResponseStatsProjection(Projection):
    """One row per InMail: its filters (sender, tier, kind, template, sent time) and outcome."""

    name = "response_stats"
    version = 1
    handles: ClassVar[frozenset[type[Event]]] = frozenset(
        {InMailSent, InMailRead, InMailReplied, InMailDeclined, CreditRefunded}
    )
    tables = ("response_stats",)
    schema = (
        "CREATE TABLE IF NOT EXISTS response_stats ("
        " inmail_id TEXT PRIMARY KEY, sender_id TEXT NOT NULL, sender_tier TEXT NOT NULL,"
        " kind TEXT NOT NULL, template_id TEXT, policy INTEGER NOT NULL, sent_at BIGINT NOT NULL,"
        " charged INTEGER NOT NULL, was_read INTEGER NOT NULL, replied INTEGER NOT NULL,"
        " declined INTEGER NOT NULL, responded_at BIGINT, responded_30d INTEGER NOT NULL,"
        " refunded INTEGER NOT NULL) WITHOUT ROWID",
        "CREATE INDEX IF NOT EXISTS response_stats_by_sender ON response_stats (sender_id, sent_at)",
    )

    def apply(self, tx: Tx, events: Batch, *, strict: bool) -> None:
        """Load the InMails the batch responds to, evolve, write back."""
        sent_here = {e.inmail_id for _, e in events if isinstance(e, InMailSent)}
        wanted = {e.inmail_id for _, e in events if isinstance(e, _RESPONSES)} - sent_here
        loaded = load_rows(
            tx, f"SELECT {_COLUMNS} FROM response_stats WHERE inmail_id IN ({{keys}})", wanted, StatsRow
        )
        view = Touched(loaded, strict=strict, noun="InMail", unknown="names unknown InMail")
        for seq, event in events:
            evolve(view, seq, event)
        view.write_back(
            tx,
            f"INSERT INTO response_stats ({_COLUMNS}) VALUES ({', '.join('?' * 14)})",
            "UPDATE response_stats SET was_read = ?, replied = ?, declined = ?, responded_at = ?,"
            " responded_30d = ?, refunded = ? WHERE inmail_id = ?",
            _values,
            _changes,
        )


def query(tx: Tx, q: ResponseStats) -> ResponseStatsData:
    """Counts and rates over the InMails matching every filter given."""
    where: list[str] = []
    params: list[object] = []
    for column, value in (
        ("sender_id", q.sender_id),
        ("sender_tier", q.tier),
        ("kind", q.kind),
        ("template_id", q.template_id),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if q.since is not None:
        where.append("sent_at >= ?")
        params.append(to_us(q.since))
    if q.until is not None:
        where.append("sent_at < ?")
        params.append(to_us(q.until))
    row = tx.fetchone(
        "SELECT COUNT(*), COALESCE(SUM(charged), 0), COALESCE(SUM(was_read), 0),"
        " COALESCE(SUM(replied), 0), COALESCE(SUM(declined), 0),"
        " COALESCE(SUM(CASE WHEN responded_at IS NULL THEN 0 ELSE 1 END), 0),"
        " COALESCE(SUM(responded_30d), 0), COALESCE(SUM(refunded), 0)"
        " FROM response_stats" + (f" WHERE {' AND '.join(where)}" if where else ""),
        params,
    )
    assert row is not None
    sent, charged, read, replied, declined, responded, responded_30d, refunded = (int(v) for v in row)
    return ResponseStatsData(
        sent=sent,
        charged=charged,
        read=read,
        replied=replied,
        declined=declined,
        responded=responded,
        responded_30d=responded_30d,
        refunded=refunded,
        response_rate=responded / sent if sent else 0.0,
        response_rate_30d=responded_30d / sent if sent else 0.0,
        read_rate=read / sent if sent else 0.0,
    )
