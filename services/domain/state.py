"""The member aggregate's state, and ``evolve``: what the recorded events say, and no rule.

Consistency boundary: all credit movements of a member, and the whole life of
each InMail the member sent (read receipts, responses, refunds), live in this
one aggregate, on one subject. So a credit can only be spent, and a refund
only paid, by an append at the aggregate's current version: no credit is spent
twice and no refund paid twice, whatever the concurrency.

``evolve`` holds no rule: it applies what the events say, and is the only code
run on replay. The rules are in the decision modules beside this one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

import msgspec

from contracts.events import (
    EVENT_TYPES,
    AnyEvent,
    CreditRefunded,
    CreditsForfeited,
    CreditsRefreshed,
    Event,
    FreeReason,
    InMailAcknowledged,
    InMailDeclined,
    InMailRead,
    InMailReplied,
    InMailSent,
    MemberBlocked,
    MemberRegistered,
    MembersConnected,
    PreferencesUpdated,
    TierChanged,
)
from contracts.types import Tier


class SentInMail(msgspec.Struct, gc=False):
    """An InMail as its sender's aggregate knows it.

    Not tracked by the garbage collector (``gc=False``; it holds no reference that
    could form a cycle), like ``Receipt``: a member holds one of each per InMail it
    ever sent, and a full collection traversing them stalled the service for up to a
    quarter of a second once it held a few hundred thousand (``docs/benchmarks.md``).
    """

    inmail_id: str
    recipient_id: str
    sent_at: datetime
    seq: int
    charged: bool
    free_reason: FreeReason | None
    follow_up_of: str | None
    followed_up: bool = False
    read_seq: int | None = None
    acknowledged_seq: int | None = None
    replied_seq: int | None = None
    declined_seq: int | None = None
    refunded: bool = False

    @property
    def responded(self) -> bool:
        return self.replied_seq is not None or self.declined_seq is not None


class Receipt(msgspec.Struct, gc=False):
    """What a command that wrote events left behind, to answer a repeat of it."""

    seq: int
    credits_left: int
    inmail_ids: tuple[str, ...] = ()
    refunded: bool = False
    recorded: int = 0
    """The types of the events the command wrote, as bits of ``EVENT_BITS``: an int, not a
    set, so a receipt adds no object for the garbage collector to traverse."""
    fingerprint: str = ""
    """What the command asked for (``rules.fingerprint``); empty when recorded before it was kept."""


EVENT_BITS: Mapping[type[Event], int] = MappingProxyType(
    {event_type: 1 << bit for bit, event_type in enumerate(EVENT_TYPES)}
)


@dataclass(slots=True)
class Member:
    """A registered member's state, rebuilt from their events."""

    member_id: str
    display_name: str
    tier: Tier
    open_profile: bool
    inmail_opt_out: bool
    registered_seq: int
    registered_at: datetime
    version: int
    last_event_at: datetime
    tier_seq: int
    """Stream sequence of the event that recorded the current tier."""
    preferences_seq: int
    """Stream sequence of the event that recorded the current preferences."""
    balance: int = 0
    granted: int = 0
    spent: int = 0
    refunded: int = 0
    forfeited: int = 0
    last_refreshed_month: str = ""
    refreshed: dict[str, int] = field(default_factory=dict)
    """Month -> stream sequence of the event that recorded its refresh."""
    connections: dict[str, int] = field(default_factory=dict)
    blocked: dict[str, int] = field(default_factory=dict)
    inmails: dict[str, SentInMail] = field(default_factory=dict)
    receipts: dict[str, Receipt] = field(default_factory=dict)


def evolve(state: Member | None, event: AnyEvent, seq: int) -> Member:
    """Apply one recorded event (at stream sequence ``seq``); mutates and returns the state."""
    if isinstance(event, MemberRegistered) and state is None:
        state = Member(
            member_id=event.member_id,
            display_name=event.display_name,
            tier=event.tier,
            open_profile=event.open_profile,
            inmail_opt_out=event.inmail_opt_out,
            registered_seq=seq,
            registered_at=event.occurred_at,
            version=seq,
            last_event_at=event.occurred_at,
            tier_seq=seq,
            preferences_seq=seq,
            balance=event.granted,
            granted=event.granted,
            last_refreshed_month=event.month,
            refreshed={event.month: seq},
        )
    elif state is None:
        raise ValueError(f"{type(event).__name__} at seq {seq} precedes its member's registration")
    else:
        _apply(state, event, seq)
        state.version = seq
        state.last_event_at = max(state.last_event_at, event.occurred_at)
    _record_receipt(state, event, seq)
    return state


def _apply(state: Member, event: AnyEvent, seq: int) -> None:
    match event:
        case InMailSent():
            state.inmails[event.inmail_id] = SentInMail(
                inmail_id=event.inmail_id,
                recipient_id=event.recipient_id,
                sent_at=event.occurred_at,
                seq=seq,
                charged=event.charged,
                free_reason=event.free_reason,
                follow_up_of=event.follow_up_of,
            )
            if event.follow_up_of is not None and event.follow_up_of in state.inmails:
                state.inmails[event.follow_up_of].followed_up = True
            if event.charged:
                state.balance -= 1
                state.spent += 1
        case InMailRead():
            state.inmails[event.inmail_id].read_seq = seq
        case InMailAcknowledged():
            state.inmails[event.inmail_id].acknowledged_seq = seq
        case InMailReplied():
            state.inmails[event.inmail_id].replied_seq = seq
        case InMailDeclined():
            state.inmails[event.inmail_id].declined_seq = seq
        case CreditRefunded():
            state.inmails[event.inmail_id].refunded = True
            state.balance += 1
            state.refunded += 1
        case CreditsRefreshed():
            state.balance += event.granted - event.forfeited
            state.granted += event.granted
            state.forfeited += event.forfeited
            state.refreshed[event.month] = seq
            state.last_refreshed_month = max(state.last_refreshed_month, event.month)
        case CreditsForfeited():
            state.balance -= event.amount
            state.forfeited += event.amount
        case TierChanged():
            state.tier = event.tier
            state.balance += event.granted
            state.granted += event.granted
            state.tier_seq = seq
        case PreferencesUpdated():
            state.open_profile = event.open_profile
            state.inmail_opt_out = event.inmail_opt_out
            state.preferences_seq = seq
        case MembersConnected():
            state.connections[event.other_member_id] = seq
        case MemberBlocked():
            state.blocked[event.blocked_member_id] = seq
        case MemberRegistered():
            raise ValueError(f"member {event.member_id} registered twice (seq {seq})")


def _record_receipt(state: Member, event: Event, seq: int) -> None:
    receipt = state.receipts.get(event.command_id)
    if receipt is None:
        receipt = state.receipts[event.command_id] = Receipt(
            seq=seq, credits_left=state.balance, fingerprint=event.fingerprint
        )
    receipt.seq = seq
    receipt.credits_left = state.balance
    receipt.recorded |= EVENT_BITS[type(event)]
    if isinstance(event, InMailSent):
        receipt.inmail_ids += (event.inmail_id,)
    elif isinstance(event, CreditRefunded):
        receipt.refunded = True


def rebuild(events: Sequence[tuple[AnyEvent, int]]) -> Member | None:
    """The state after a sequence of (event, seq), oldest first."""
    state: Member | None = None
    for event, seq in events:
        state = evolve(state, event, seq)
    return state
