"""Inbox: a member's received or sent InMails, newest first, with where each one stands.

Handles ``MemberRegistered`` (display names), ``InMailSent``, ``InMailRead``,
``InMailAcknowledged``, ``InMailReplied``, ``InMailDeclined`` and ``CreditRefunded``.
Status moves ``sent`` → ``read`` → ``declined`` → ``replied`` and never back: a reply
after a decline makes it ``replied``; ``responded_at`` stays the first response's time.
Names are joined in at query time from the members table, so an InMail row never
copies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Any, ClassVar

from contracts.events import (
    CreditRefunded,
    Event,
    InMailAcknowledged,
    InMailDeclined,
    InMailRead,
    InMailReplied,
    InMailSent,
    MemberRegistered,
)
from contracts.queries import Inbox, InboxItem, InboxPage
from projections.base import (
    Batch,
    Projection,
    ProjectionError,
    QueryFailure,
    Touched,
    decode_cursor,
    encode_cursor,
    from_us,
    load_rows,
    maybe_from_us,
    to_us,
)
from projections.db import Tx

_COLUMNS = (
    "inmail_id, seq, sender_id, recipient_id, subject, body, kind, template_id, free_reason, "
    "follow_up_of, charged, refunded, status, sent_at, read_at, acknowledged_at, responded_at"
)


@dataclass(slots=True)
class InMailRow:
    """One InMail as the inbox shows it; times in microseconds."""

    inmail_id: str
    seq: int
    sender_id: str
    recipient_id: str
    subject: str
    body: str
    kind: str
    template_id: str | None
    free_reason: str | None
    follow_up_of: str | None
    charged: int
    refunded: int
    status: str
    sent_at: int
    read_at: int | None = None
    acknowledged_at: int | None = None
    responded_at: int | None = None


# C-level getters: building the rows' parameter tuples is on the rebuild's hot path.
_values = attrgetter(*(name.strip() for name in _COLUMNS.split(",")))
_changes = attrgetter("status", "refunded", "read_at", "acknowledged_at", "responded_at", "inmail_id")
_RESPONSES = (InMailRead, InMailAcknowledged, InMailReplied, InMailDeclined, CreditRefunded)


class InboxView(Touched[InMailRow]):
    """The InMails one batch touches, and the members it registers."""

    def __init__(self, loaded: dict[str, InMailRow], *, strict: bool) -> None:
        super().__init__(loaded, strict=strict, noun="InMail", unknown="names unknown InMail")
        self.members: dict[str, str] = {}


def evolve(view: InboxView, seq: int, event: Event) -> None:
    """Apply one event to the batch's rows."""
    match event:
        case InMailSent():
            view.create(event.inmail_id, InMailRow(
                inmail_id=event.inmail_id,
                seq=seq,
                sender_id=event.sender_id,
                recipient_id=event.recipient_id,
                subject=event.subject,
                body=event.body,
                kind=event.kind,
                template_id=event.template_id,
                free_reason=event.free_reason,
                follow_up_of=event.follow_up_of,
                charged=int(event.charged),
                refunded=0,
                status="sent",
                sent_at=to_us(event.occurred_at),
            ), "sent")
        case InMailRead():
            if (row := view.existing(event.inmail_id, event)) is not None and row.read_at is None:
                row.read_at = to_us(event.occurred_at)
                if row.status == "sent":
                    row.status = "read"
        case InMailAcknowledged():
            if (row := view.existing(event.inmail_id, event)) is not None and row.acknowledged_at is None:
                row.acknowledged_at = to_us(event.occurred_at)
        case InMailDeclined():
            if (row := view.existing(event.inmail_id, event)) is not None:
                if row.status != "replied":
                    row.status = "declined"
                if row.responded_at is None:
                    row.responded_at = to_us(event.occurred_at)
        case InMailReplied():
            if (row := view.existing(event.inmail_id, event)) is not None:
                row.status = "replied"
                if row.responded_at is None:
                    row.responded_at = to_us(event.occurred_at)
        case CreditRefunded():
            if (row := view.existing(event.inmail_id, event)) is not None:
                row.refunded = 1
        case MemberRegistered():
            if event.member_id in view.members:
                raise ProjectionError(f"member {event.member_id} registered twice")
            view.members[event.member_id] = event.display_name


class InboxProjection(Projection):
    """Every InMail with sender, recipient and status; every member's display name."""

    name = "inbox"
    version = 1
    handles: ClassVar[frozenset[type[Event]]] = frozenset(
        {
            MemberRegistered,
            InMailSent,
            InMailRead,
            InMailAcknowledged,
            InMailReplied,
            InMailDeclined,
            CreditRefunded,
        }
    )
    tables = ("inbox_members", "inbox_inmails")
    schema = (
        "CREATE TABLE IF NOT EXISTS inbox_members ("
        " member_id TEXT PRIMARY KEY, display_name TEXT NOT NULL) WITHOUT ROWID",
        "CREATE TABLE IF NOT EXISTS inbox_inmails ("
        " inmail_id TEXT PRIMARY KEY, seq BIGINT NOT NULL,"
        " sender_id TEXT NOT NULL, recipient_id TEXT NOT NULL,"
        " subject TEXT NOT NULL, body TEXT NOT NULL, kind TEXT NOT NULL,"
        " template_id TEXT, free_reason TEXT, follow_up_of TEXT,"
        " charged INTEGER NOT NULL, refunded INTEGER NOT NULL, status TEXT NOT NULL,"
        " sent_at BIGINT NOT NULL, read_at BIGINT, acknowledged_at BIGINT, responded_at BIGINT)",
        "CREATE INDEX IF NOT EXISTS inbox_received ON inbox_inmails (recipient_id, sent_at, seq)",
        "CREATE INDEX IF NOT EXISTS inbox_sent ON inbox_inmails (sender_id, sent_at, seq)",
    )

    def apply(self, tx: Tx, events: Batch, *, strict: bool) -> None:
        """Load the InMails the batch responds to, evolve, write back."""
        sent_here = {e.inmail_id for _, e in events if isinstance(e, InMailSent)}
        wanted = {e.inmail_id for _, e in events if isinstance(e, _RESPONSES)} - sent_here
        loaded = load_rows(
            tx, f"SELECT {_COLUMNS} FROM inbox_inmails WHERE inmail_id IN ({{keys}})", wanted, InMailRow
        )
        view = InboxView(loaded, strict=strict)
        for seq, event in events:
            evolve(view, seq, event)
        tx.executemany(
            "INSERT INTO inbox_members (member_id, display_name) VALUES (?, ?)",
            list(view.members.items()),
        )
        view.write_back(
            tx,
            f"INSERT INTO inbox_inmails ({_COLUMNS}) VALUES ({', '.join('?' * 17)})",
            "UPDATE inbox_inmails SET status = ?, refunded = ?, read_at = ?, acknowledged_at = ?,"
            " responded_at = ? WHERE inmail_id = ?",
            _values,
            _changes,
        )


_CURSOR = "inbox"


def query(tx: Tx, q: Inbox) -> InboxPage:
    """A page of a member's InMails, newest first (by sent time, then stream order)."""
    if tx.fetchone("SELECT 1 FROM inbox_members WHERE member_id = ?", (q.member_id,)) is None:
        raise QueryFailure("UNKNOWN_MEMBER", f"unknown member {q.member_id}")
    owner = "i.recipient_id" if q.box == "received" else "i.sender_id"
    where = [f"{owner} = ?"]
    params: list[object] = [q.member_id]
    if q.status is not None:
        where.append("i.status = ?")
        params.append(q.status)
    if q.before is not None:
        key = decode_cursor(_CURSOR, q.before, 2)
        if key is None:
            raise QueryFailure("INVALID_QUERY", "before: not a cursor of an Inbox page")
        # Written so both planners can use the (owner, sent_at, seq) index as a range.
        where.append("i.sent_at <= ? AND (i.sent_at < ? OR i.seq < ?)")
        params.extend([key[0], key[0], key[1]])
    params.append(q.limit + 1)
    rows = tx.fetchall(
        "SELECT i.inmail_id, i.sender_id, COALESCE(s.display_name, ''), i.recipient_id,"
        " COALESCE(r.display_name, ''), i.subject, i.body, i.kind, i.status, i.charged,"
        " i.refunded, i.follow_up_of, i.sent_at, i.read_at, i.acknowledged_at, i.responded_at,"
        " i.free_reason, i.template_id, i.seq"
        " FROM inbox_inmails i"
        " LEFT JOIN inbox_members s ON s.member_id = i.sender_id"
        " LEFT JOIN inbox_members r ON r.member_id = i.recipient_id"
        f" WHERE {' AND '.join(where)}"
        " ORDER BY i.sent_at DESC, i.seq DESC LIMIT ?",
        params,
    )
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    items = [_item(row) for row in rows]
    next_cursor = encode_cursor(_CURSOR, rows[-1][12], rows[-1][18]) if more else None
    return InboxPage(items=items, next=next_cursor)


def _item(row: tuple[Any, ...]) -> InboxItem:
    (inmail_id, sender_id, sender_name, recipient_id, recipient_name, subject, body, kind, status,
     charged, refunded, follow_up_of, sent_at, read_at, acknowledged_at, responded_at,
     free_reason, template_id, _seq) = row
    return InboxItem(
        inmail_id=inmail_id,
        sender_id=sender_id,
        sender_name=sender_name,
        recipient_id=recipient_id,
        recipient_name=recipient_name,
        subject=subject,
        body=body,
        kind=kind,
        status=status,
        charged=bool(charged),
        refunded=bool(refunded),
        follow_up_of=follow_up_of,
        sent_at=from_us(sent_at),
        read_at=maybe_from_us(read_at),
        acknowledged_at=maybe_from_us(acknowledged_at),
        responded_at=maybe_from_us(responded_at),
        free_reason=free_reason,
        template_id=template_id,
    )
