"""Inbox: a member's received or sent InMails, newest first, with where each one stands.

Handles ``MemberRegistered`` (display names), ``InMailSent``, ``InMailRead``,
``InMailAcknowledged``, ``InMailReplied``, ``InMailDeclined`` and ``CreditRefunded``;
and for section 8 ``InMailScheduled``, ``ScheduledInMailCancelled`` and
``FollowUpCancelled``. Status moves ``sent`` → ``read`` → ``declined`` → ``replied``
and never back: a reply after a decline makes it ``replied``; ``responded_at`` stays
the first response's time. A scheduled InMail, and an automated follow-up once the
InMail it follows is delivered, is a row with status ``scheduled`` (``sent_at`` its
due time) shown only in the sender's ``scheduled`` box; it becomes ``sent`` when
delivered (``sent_at`` the delivery time) or ``cancelled``. Names are joined in at
query time from the members table, so an InMail row never copies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from operator import attrgetter
from typing import Any, ClassVar

from contracts.events import (
    CreditRefunded,
    Event,
    FollowUpCancelled,
    InMailAcknowledged,
    InMailDeclined,
    InMailRead,
    InMailReplied,
    InMailScheduled,
    InMailSent,
    MemberRegistered,
    ScheduledInMailCancelled,
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
    "follow_up_of, charged, refunded, status, sent_at, read_at, acknowledged_at, responded_at, "
    "scheduled_for, cancelled_reason"
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
    scheduled_for: int | None = None
    cancelled_reason: str | None = None


# C-level getters: building the rows' parameter tuples is on the rebuild's hot path.
_values = attrgetter(*(name.strip() for name in _COLUMNS.split(",")))
_changes = attrgetter(
    "status", "refunded", "read_at", "acknowledged_at", "responded_at", "seq", "sent_at", "charged",
    "free_reason", "cancelled_reason", "inmail_id",
)
_RESPONSES = (
    InMailRead,
    InMailAcknowledged,
    InMailReplied,
    InMailDeclined,
    CreditRefunded,
    ScheduledInMailCancelled,
    FollowUpCancelled,
)
_NOT_SENT = ("scheduled", "cancelled")
"""Statuses of InMails that never went out: only the sender's scheduled box shows them."""


class InboxView(Touched[InMailRow]):
    """The InMails one batch touches, and the members it registers."""

    def __init__(self, loaded: dict[str, InMailRow], *, strict: bool) -> None:
        super().__init__(loaded, strict=strict, noun="InMail", unknown="names unknown InMail")
        self.members: dict[str, str] = {}


def evolve(view: InboxView, seq: int, event: Event) -> None:
    """Apply one event to the batch's rows."""
    match event:
        case InMailSent():
            _sent(view, seq, event)
        case InMailScheduled():
            due = to_us(event.send_at)
            view.create(event.inmail_id, _row(event, seq, "scheduled", due, scheduled_for=due), "scheduled")
        case ScheduledInMailCancelled():
            if (row := view.existing(event.inmail_id, event)) is not None:
                row.status, row.cancelled_reason = "cancelled", event.reason
        case FollowUpCancelled():
            # A follow-up called off before its InMail was delivered never had a row.
            if (row := view.rows.get(event.inmail_id)) is not None:
                view.changed.add(event.inmail_id)
                row.status, row.cancelled_reason = "cancelled", event.reason
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


def _sent(view: InboxView, seq: int, event: InMailSent) -> None:
    sent_at = to_us(event.occurred_at)
    if event.scheduled or event.automated:
        # Its row has been waiting in the scheduled box since it was scheduled or planned.
        if (row := view.existing(event.inmail_id, event)) is not None:
            row.status, row.seq, row.sent_at = "sent", seq, sent_at
            row.charged, row.free_reason = int(event.charged), event.free_reason
    else:
        view.create(event.inmail_id, _row(event, seq, "sent", sent_at), "sent")
    plan = event.automated_follow_up
    if plan is not None:
        due = to_us(event.occurred_at + timedelta(days=plan.after_days))
        view.create(plan.inmail_id, InMailRow(
            inmail_id=plan.inmail_id,
            seq=seq,
            sender_id=event.sender_id,
            recipient_id=event.recipient_id,
            subject=plan.subject,
            body=plan.body,
            kind=event.kind,
            template_id=None,
            free_reason=None,
            follow_up_of=event.inmail_id,
            charged=0,
            refunded=0,
            status="scheduled",
            sent_at=due,
            scheduled_for=due,
        ), "planned")


def _row(
    event: InMailSent | InMailScheduled, seq: int, status: str, sent_at: int, scheduled_for: int | None = None
) -> InMailRow:
    """The row of an InMail as its sending or scheduling records it."""
    return InMailRow(
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
        status=status,
        sent_at=sent_at,
        scheduled_for=scheduled_for,
    )


class InboxProjection(Projection):
    """Every InMail with sender, recipient and status; every member's display name."""

    name = "inbox"
    version = 2
    handles: ClassVar[frozenset[type[Event]]] = frozenset(
        {
            MemberRegistered,
            InMailSent,
            InMailRead,
            InMailAcknowledged,
            InMailReplied,
            InMailDeclined,
            CreditRefunded,
            InMailScheduled,
            ScheduledInMailCancelled,
            FollowUpCancelled,
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
        " sent_at BIGINT NOT NULL, read_at BIGINT, acknowledged_at BIGINT, responded_at BIGINT,"
        " scheduled_for BIGINT, cancelled_reason TEXT)",
        "CREATE INDEX IF NOT EXISTS inbox_received ON inbox_inmails (recipient_id, sent_at, seq)",
        "CREATE INDEX IF NOT EXISTS inbox_sent ON inbox_inmails (sender_id, sent_at, seq)",
    )

    def apply(self, tx: Tx, events: Batch, *, strict: bool) -> None:
        """Load the InMails the batch responds to, evolve, write back."""
        created_here = {key for _, e in events for key in _created(e)}
        wanted = {key for _, e in events if (key := _changed(e)) is not None} - created_here
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
            f"INSERT INTO inbox_inmails ({_COLUMNS}) VALUES ({', '.join('?' * 19)})",
            "UPDATE inbox_inmails SET status = ?, refunded = ?, read_at = ?, acknowledged_at = ?,"
            " responded_at = ?, seq = ?, sent_at = ?, charged = ?, free_reason = ?, cancelled_reason = ?"
            " WHERE inmail_id = ?",
            _values,
            _changes,
        )


def _created(event: Event) -> tuple[str, ...]:
    """The rows an event brings into being."""
    match event:
        case InMailSent():
            planned = (event.automated_follow_up.inmail_id,) if event.automated_follow_up else ()
            fresh = () if event.scheduled or event.automated else (event.inmail_id,)
            return fresh + planned
        case InMailScheduled():
            return (event.inmail_id,)
    return ()


def _changed(event: Event) -> str | None:
    """The row an event changes, if it changes one it did not create."""
    if isinstance(event, InMailSent):
        return event.inmail_id if event.scheduled or event.automated else None
    return event.inmail_id if isinstance(event, _RESPONSES) else None


_CURSOR = "inbox"


def query(tx: Tx, q: Inbox) -> InboxPage:
    """A page of a member's InMails, newest first (by sent time, then stream order)."""
    if tx.fetchone("SELECT 1 FROM inbox_members WHERE member_id = ?", (q.member_id,)) is None:
        raise QueryFailure("UNKNOWN_MEMBER", f"unknown member {q.member_id}")
    owner = "i.recipient_id" if q.box == "received" else "i.sender_id"
    scheduled = "IN" if q.box == "scheduled" else "NOT IN"
    where = [f"{owner} = ?", f"i.status {scheduled} ('{_NOT_SENT[0]}', '{_NOT_SENT[1]}')"]
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
        " i.free_reason, i.template_id, i.seq, i.scheduled_for, i.cancelled_reason"
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
     free_reason, template_id, _seq, scheduled_for, cancelled_reason) = row
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
        scheduled_for=maybe_from_us(scheduled_for),
        cancelled_reason=cancelled_reason,
    )
