"""Credits: each member's balance now or at any past time, and the ledger of every movement.

Handles ``MemberRegistered`` (the first month's grant: reason ``refresh``),
``CreditsRefreshed`` (``refresh`` +granted, then ``forfeit`` -forfeited),
``CreditsForfeited`` (its reason, ``tier_change``: -amount), ``TierChanged``
(``tier_change`` +granted, and the new tier), a charged ``InMailSent`` or
``InMailScheduled`` (``send`` -cost; a scheduled InMail is charged when scheduled,
not again when delivered) and ``CreditRefunded`` (``refund`` +cost, naming the
InMail and the response event that earned it; ``cancelled`` +cost for a scheduled
InMail that was not delivered).

Every ledger row carries the member's running totals and tier after it, so the
balance at a time ``at`` is the last row at or before ``at``. A change that moves
no credit but changes what ``at`` must answer (a free member's registration, a
move to the free tier) is kept as a row with delta 0, which the ledger query
leaves out: the ledger lists credit movements only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any, ClassVar

from contracts.events import (
    CreditRefunded,
    CreditsForfeited,
    CreditsRefreshed,
    Event,
    InMailScheduled,
    InMailSent,
    MemberRegistered,
    TierChanged,
)
from contracts.policy import policy
from contracts.queries import (
    CreditBalance,
    CreditBalanceData,
    CreditLedger,
    LedgerEntry,
    LedgerPage,
    LedgerReason,
)
from contracts.types import utc
from projections.base import (
    Batch,
    Projection,
    QueryFailure,
    Touched,
    decode_cursor,
    encode_cursor,
    from_us,
    load_rows,
    to_us,
)
from projections.db import Tx

_BALANCE_COLUMNS = "member_id, tier, policy, balance, granted, spent, refunded, forfeited"
_LEDGER_COLUMNS = (
    "member_id, seq, idx, occurred_at, delta, balance_after, reason, inmail_id, response_event_id,"
    " tier, policy, granted, spent, refunded, forfeited"
)


@dataclass(slots=True)
class Balance:
    """A member's credit state: tier, balance and lifetime totals."""

    member_id: str
    tier: str
    policy: int
    balance: int = 0
    granted: int = 0
    spent: int = 0
    refunded: int = 0
    forfeited: int = 0



_values = attrgetter(*(name.strip() for name in _BALANCE_COLUMNS.split(",")))
_changes = attrgetter("tier", "policy", "balance", "granted", "spent", "refunded", "forfeited", "member_id")


class CreditsView(Touched[Balance]):
    """The balances one batch touches, and the ledger rows it appends."""

    def __init__(self, loaded: dict[str, Balance], *, strict: bool) -> None:
        super().__init__(loaded, strict=strict, noun="member", unknown="for unknown member")
        self.ledger: list[tuple[object, ...]] = []
        self._last: tuple[str, int] = ("", 0)
        self._idx = 0

    def record(
        self,
        balance: Balance,
        seq: int,
        event: Event,
        reason: LedgerReason,
        delta: int,
        *,
        inmail_id: str | None = None,
        response_event_id: str | None = None,
    ) -> None:
        """Move credits and append the ledger row recording the state after the move."""
        balance.balance += delta
        balance.policy = event.policy
        # One event can make two rows (a refresh and its forfeit): idx orders them.
        self._idx = self._idx + 1 if self._last == (balance.member_id, seq) else 0
        self._last = (balance.member_id, seq)
        self.ledger.append(
            (
                balance.member_id, seq, self._idx, to_us(event.occurred_at), delta,
                balance.balance, reason, inmail_id, response_event_id, balance.tier,
                balance.policy, balance.granted, balance.spent, balance.refunded,
                balance.forfeited,
            )
        )


def evolve(view: CreditsView, seq: int, event: Event) -> None:
    """Apply one event to the batch's balances and ledger."""
    match event:
        case InMailSent() | InMailScheduled():
            if _spends(event) and (balance := view.existing(event.sender_id, event)) is not None:
                cost = policy(event.policy).inmail_cost
                balance.spent += cost
                view.record(balance, seq, event, "send", -cost, inmail_id=event.inmail_id)
        case MemberRegistered():
            created = view.create(
                event.member_id,
                Balance(event.member_id, event.tier, event.policy, granted=event.granted),
                "registered",
            )
            # Recorded even when it grants nothing: the row says the member exists from now on.
            view.record(created, seq, event, "refresh", event.granted)
        case CreditsRefreshed():
            if (balance := view.existing(event.member_id, event)) is not None:
                if event.granted:
                    balance.granted += event.granted
                    view.record(balance, seq, event, "refresh", event.granted)
                if event.forfeited:
                    balance.forfeited += event.forfeited
                    view.record(balance, seq, event, "forfeit", -event.forfeited)
        case CreditsForfeited():
            if (balance := view.existing(event.member_id, event)) is not None and event.amount:
                balance.forfeited += event.amount
                view.record(balance, seq, event, event.reason, -event.amount)
        case TierChanged():
            if (balance := view.existing(event.member_id, event)) is not None:
                balance.tier = event.tier
                balance.granted += event.granted
                # Recorded even when it grants nothing: the tier changed.
                view.record(balance, seq, event, "tier_change", event.granted)
        case CreditRefunded():
            if (balance := view.existing(event.member_id, event)) is not None:
                cost = policy(event.policy).inmail_cost
                balance.refunded += cost
                if event.reason == "cancelled":
                    view.record(balance, seq, event, "cancelled", cost, inmail_id=event.inmail_id)
                else:
                    view.record(
                        balance, seq, event, "refund", cost,
                        inmail_id=event.inmail_id, response_event_id=event.response_event_id,
                    )


class CreditsProjection(Projection):
    """Balances, and a ledger row per credit movement with the totals after it."""

    name = "credits"
    version = 1
    handles: ClassVar[frozenset[type[Event]]] = frozenset(
        {MemberRegistered, CreditsRefreshed, CreditsForfeited, TierChanged, InMailSent,
         InMailScheduled, CreditRefunded}
    )
    tables = ("credit_balances", "credit_ledger")
    schema = (
        "CREATE TABLE IF NOT EXISTS credit_balances ("
        " member_id TEXT PRIMARY KEY, tier TEXT NOT NULL, policy INTEGER NOT NULL,"
        " balance BIGINT NOT NULL, granted BIGINT NOT NULL, spent BIGINT NOT NULL,"
        " refunded BIGINT NOT NULL, forfeited BIGINT NOT NULL) WITHOUT ROWID",
        "CREATE TABLE IF NOT EXISTS credit_ledger ("
        " member_id TEXT NOT NULL, seq BIGINT NOT NULL, idx INTEGER NOT NULL,"
        " occurred_at BIGINT NOT NULL, delta INTEGER NOT NULL, balance_after BIGINT NOT NULL,"
        " reason TEXT NOT NULL, inmail_id TEXT, response_event_id TEXT,"
        " tier TEXT NOT NULL, policy INTEGER NOT NULL, granted BIGINT NOT NULL,"
        " spent BIGINT NOT NULL, refunded BIGINT NOT NULL, forfeited BIGINT NOT NULL,"
        " PRIMARY KEY (member_id, seq, idx)) WITHOUT ROWID",
    )

    def apply(self, tx: Tx, events: Batch, *, strict: bool) -> None:
        """Load the balances the batch moves, evolve, write balances back and append the ledger."""
        registered_here = {e.member_id for _, e in events if isinstance(e, MemberRegistered)}
        wanted = {member for _, e in events if (member := _moves(e))} - registered_here
        loaded = load_rows(
            tx,
            f"SELECT {_BALANCE_COLUMNS} FROM credit_balances WHERE member_id IN ({{keys}})",
            wanted,
            Balance,
        )
        view = CreditsView(loaded, strict=strict)
        for seq, event in events:
            evolve(view, seq, event)
        view.write_back(
            tx,
            f"INSERT INTO credit_balances ({_BALANCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            "UPDATE credit_balances SET tier = ?, policy = ?, balance = ?, granted = ?, spent = ?,"
            " refunded = ?, forfeited = ? WHERE member_id = ?",
            _values,
            _changes,
        )
        tx.executemany(
            f"INSERT INTO credit_ledger ({_LEDGER_COLUMNS}) VALUES ({', '.join('?' * 15)})",
            view.ledger,
        )


def _moves(event: Event) -> str | None:
    """The member whose existing balance an event moves, if any."""
    match event:
        case CreditsRefreshed() | CreditsForfeited() | TierChanged() | CreditRefunded():
            return event.member_id
        case InMailSent() | InMailScheduled() if _spends(event):
            return event.sender_id
    return None


def _spends(event: InMailSent | InMailScheduled) -> bool:
    """Whether the event takes the InMail's credit (a delivery from a schedule took it earlier)."""
    return event.charged and not (isinstance(event, InMailSent) and event.scheduled)


def balance_query(tx: Tx, q: CreditBalance) -> CreditBalanceData:
    """A member's credits now, or as they were at ``q.at`` (after every event up to then)."""
    if q.at is None:
        row = tx.fetchone(
            "SELECT tier, policy, balance, granted, spent, refunded, forfeited"
            " FROM credit_balances WHERE member_id = ?",
            (q.member_id,),
        )
        if row is None:
            raise QueryFailure("UNKNOWN_MEMBER", f"unknown member {q.member_id}")
        return _balance(q.member_id, row)
    # A member's events are in time order, so the last row by sequence at or before ``at``
    # is the state at ``at``.
    row = tx.fetchone(
        "SELECT tier, policy, balance_after, granted, spent, refunded, forfeited"
        " FROM credit_ledger WHERE member_id = ? AND occurred_at <= ?"
        " ORDER BY seq DESC, idx DESC LIMIT 1",
        (q.member_id, to_us(q.at)),
    )
    if row is None:
        exists = tx.fetchone("SELECT 1 FROM credit_balances WHERE member_id = ?", (q.member_id,))
        when = _rfc3339(q.at)
        raise QueryFailure(
            "UNKNOWN_MEMBER",
            f"member {q.member_id} was not registered at {when}" if exists
            else f"unknown member {q.member_id}",
        )
    return _balance(q.member_id, row)


def _balance(member_id: str, row: tuple[Any, ...]) -> CreditBalanceData:
    tier, version, balance, granted, spent, refunded, forfeited = row
    rules = policy(version).tier(tier)
    return CreditBalanceData(
        member_id=member_id,
        tier=tier,
        balance=balance,
        monthly_allotment=rules.monthly_allotment,
        cap=rules.cap,
        granted=granted,
        spent=spent,
        refunded=refunded,
        forfeited=forfeited,
    )


_CURSOR = "ledger"


def ledger_query(tx: Tx, q: CreditLedger) -> LedgerPage:
    """A page of a member's credit movements, newest first."""
    if tx.fetchone("SELECT 1 FROM credit_balances WHERE member_id = ?", (q.member_id,)) is None:
        raise QueryFailure("UNKNOWN_MEMBER", f"unknown member {q.member_id}")
    where = "member_id = ? AND delta <> 0"
    params: list[object] = [q.member_id]
    if q.before is not None:
        key = decode_cursor(_CURSOR, q.before, 2)
        if key is None:
            raise QueryFailure("INVALID_QUERY", "before: not a cursor of a CreditLedger page")
        where += " AND seq <= ? AND (seq < ? OR idx < ?)"
        params.extend([key[0], key[0], key[1]])
    params.append(q.limit + 1)
    rows = tx.fetchall(
        "SELECT seq, idx, occurred_at, delta, balance_after, reason, inmail_id, response_event_id"
        f" FROM credit_ledger WHERE {where} ORDER BY seq DESC, idx DESC LIMIT ?",
        params,
    )
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    entries = [
        LedgerEntry(
            seq=seq,
            occurred_at=from_us(occurred_at),
            delta=delta,
            balance_after=balance_after,
            reason=reason,
            inmail_id=inmail_id,
            response_event_id=response_event_id,
        )
        for seq, _idx, occurred_at, delta, balance_after, reason, inmail_id, response_event_id in rows
    ]
    next_cursor = encode_cursor(_CURSOR, rows[-1][0], rows[-1][1]) if more else None
    return LedgerPage(entries=entries, next=next_cursor)


def _rfc3339(moment: datetime) -> str:
    return utc(moment).isoformat().replace("+00:00", "Z")
