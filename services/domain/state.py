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
from datetime import datetime, timedelta
from types import MappingProxyType

import msgspec

from contracts.events import (
    EVENT_TYPES,
    AnyEvent,
    BulkSuspensionEnded,
    CreditRefunded,
    CreditsForfeited,
    CreditsRefreshed,
    Event,
    FollowUpCancelled,
    FreeReason,
    InMailAcknowledged,
    InMailDeclined,
    InMailRead,
    InMailReplied,
    InMailScheduled,
    InMailSent,
    MemberBlocked,
    MemberErased,
    MemberRegistered,
    MembersConnected,
    PreferencesUpdated,
    ResponseRateAssessed,
    ScheduledInMailCancelled,
    Stage,
    TierChanged,
)
from contracts.types import InMailKind, Tier


class SentInMail(msgspec.Struct, gc=False):
    """An InMail as its sender's aggregate knows it.

    Not tracked by the garbage collector (``gc=False``; it holds no reference that
    could form a cycle), like ``Receipt``: a member holds one of each per InMail it
    ever sent, and a full collection traversing them stalled the service for up to a
    quarter of a second once it held a few hundred thousand (``docs/benchmarks.md``).
    """

    inmail_id: str
    recipient_id: str
    sender_tier: Tier
    sent_at: datetime
    seq: int
    charged: bool
    free_reason: FreeReason | None
    follow_up_of: str | None
    followed_up: bool = False
    """A follow-up of it was sent, or is scheduled or planned (and not cancelled)."""
    automated_follow_up: str | None = None
    """The id of the automated follow-up planned with it."""
    read_seq: int | None = None
    acknowledged_seq: int | None = None
    replied_seq: int | None = None
    declined_seq: int | None = None
    responded_at: datetime | None = None
    """When the first response (reply or decline) came."""
    refunded: bool = False

    @property
    def responded(self) -> bool:
        return self.replied_seq is not None or self.declined_seq is not None


class ScheduledInMail(msgspec.Struct, gc=False):
    """An InMail scheduled for later, as its ``InMailScheduled`` recorded it, and its outcome."""

    scheduled: InMailScheduled
    seq: int
    outcome_seq: int | None = None
    """Of its delivery or its cancellation; None while it is pending."""
    delivered: bool = False
    refunded: bool = False
    follow_up_cancelled_seq: int | None = None
    """Of the FollowUpCancelled that called its automated follow-up off before delivery."""


class PlannedFollowUp(msgspec.Struct, gc=False):
    """An automated follow-up planned with a delivered InMail, and its outcome."""

    inmail_id: str
    follow_up_of: str
    recipient_id: str
    due_at: datetime
    subject: str
    body: str
    kind: InMailKind
    seq: int
    outcome_seq: int | None = None
    """Of the follow-up's InMailSent or its FollowUpCancelled; None while it is pending."""
    sent: bool = False


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
    email_notifications: bool
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
    scheduled: dict[str, ScheduledInMail] = field(default_factory=dict)
    follow_ups: dict[str, PlannedFollowUp] = field(default_factory=dict)
    """Automated follow-ups by their own id."""
    first_sent_at: datetime | None = None
    """When the member's first InMail went out: its assessment periods start that day."""
    stage: Stage = "ok"
    stage_since: datetime | None = None
    stage_until: datetime | None = None
    enforcement_seq: int = 0
    """Stream sequence of the event that recorded the current stage."""
    assessed: dict[tuple[datetime, bool], int] = field(default_factory=dict)
    """(period start, warning period) -> stream sequence of its assessment."""
    erased_seq: int | None = None
    """Stream sequence of the ``MemberErased`` that forgot the member."""


def evolve(state: Member | None, event: AnyEvent, seq: int) -> Member:
    """Apply one recorded event (at stream sequence ``seq``); mutates and returns the state."""
    if isinstance(event, MemberRegistered) and state is None:
        state = Member(
            member_id=event.member_id,
            display_name=event.display_name,
            tier=event.tier,
            open_profile=event.open_profile,
            inmail_opt_out=event.inmail_opt_out,
            email_notifications=True,
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
            _sent(state, event, seq)
        case InMailScheduled():
            state.scheduled[event.inmail_id] = ScheduledInMail(event, seq)
            _mark_followed_up(state, event.follow_up_of, True)
            if event.charged:
                state.balance -= 1
                state.spent += 1
        case ScheduledInMailCancelled():
            pending = state.scheduled[event.inmail_id]
            pending.outcome_seq = seq
            _mark_followed_up(state, pending.scheduled.follow_up_of, False)
        case FollowUpCancelled():
            follow_up = state.follow_ups.get(event.inmail_id)
            if follow_up is None:
                # Planned with a scheduled InMail that is not delivered yet.
                state.scheduled[event.follow_up_of].follow_up_cancelled_seq = seq
            else:
                follow_up.outcome_seq = seq
                _mark_followed_up(state, event.follow_up_of, False)
        case InMailRead():
            state.inmails[event.inmail_id].read_seq = seq
        case InMailAcknowledged():
            state.inmails[event.inmail_id].acknowledged_seq = seq
        case InMailReplied():
            inmail = state.inmails[event.inmail_id]
            inmail.replied_seq = seq
            inmail.responded_at = inmail.responded_at or event.occurred_at
        case InMailDeclined():
            inmail = state.inmails[event.inmail_id]
            inmail.declined_seq = seq
            inmail.responded_at = inmail.responded_at or event.occurred_at
        case CreditRefunded():
            if event.reason == "cancelled":
                state.scheduled[event.inmail_id].refunded = True
            else:
                state.inmails[event.inmail_id].refunded = True
            state.balance += 1
            state.refunded += 1
        case ResponseRateAssessed():
            state.assessed[event.period_start, event.warning_period] = seq
            _set_stage(state, event.stage, event.since, event.until, seq)
        case BulkSuspensionEnded():
            _set_stage(state, "ok", event.until, None, seq)
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
            state.email_notifications = event.email_notifications
            state.preferences_seq = seq
        case MembersConnected():
            state.connections[event.other_member_id] = seq
        case MemberBlocked():
            state.blocked[event.blocked_member_id] = seq
        case MemberErased():
            state.erased_seq = seq
        case MemberRegistered():
            raise ValueError(f"member {event.member_id} registered twice (seq {seq})")


def _sent(state: Member, event: InMailSent, seq: int) -> None:
    state.inmails[event.inmail_id] = SentInMail(
        inmail_id=event.inmail_id,
        recipient_id=event.recipient_id,
        sender_tier=event.sender_tier,
        sent_at=event.occurred_at,
        seq=seq,
        charged=event.charged,
        free_reason=event.free_reason,
        follow_up_of=event.follow_up_of,
    )
    if state.first_sent_at is None:
        state.first_sent_at = event.occurred_at
    _mark_followed_up(state, event.follow_up_of, True)
    if event.charged and not event.scheduled:
        state.balance -= 1
        state.spent += 1
    if event.scheduled:
        delivered = state.scheduled[event.inmail_id]
        delivered.outcome_seq = seq
        delivered.delivered = True
    if event.automated:
        done = state.follow_ups[event.inmail_id]
        done.outcome_seq = seq
        done.sent = True
    plan = event.automated_follow_up
    if plan is not None:
        state.follow_ups[plan.inmail_id] = PlannedFollowUp(
            inmail_id=plan.inmail_id,
            follow_up_of=event.inmail_id,
            recipient_id=event.recipient_id,
            due_at=event.occurred_at + timedelta(days=plan.after_days),
            subject=plan.subject,
            body=plan.body,
            kind=event.kind,
            seq=seq,
        )
        state.inmails[event.inmail_id].automated_follow_up = plan.inmail_id
        state.inmails[event.inmail_id].followed_up = True


def _mark_followed_up(state: Member, original_id: str | None, followed_up: bool) -> None:
    if original_id is not None and original_id in state.inmails:
        state.inmails[original_id].followed_up = followed_up


def _set_stage(
    state: Member, stage: Stage, since: datetime | None, until: datetime | None, seq: int
) -> None:
    state.stage, state.stage_since, state.stage_until = stage, since, until
    state.enforcement_seq = seq


def _record_receipt(state: Member, event: Event, seq: int) -> None:
    receipt = state.receipts.get(event.command_id)
    if receipt is None:
        receipt = state.receipts[event.command_id] = Receipt(
            seq=seq, credits_left=state.balance, fingerprint=event.fingerprint
        )
    receipt.seq = seq
    receipt.credits_left = state.balance
    receipt.recorded |= EVENT_BITS[type(event)]
    if isinstance(event, InMailSent | InMailScheduled):
        receipt.inmail_ids += (event.inmail_id,)
    elif isinstance(event, CreditRefunded):
        receipt.refunded = True


def rebuild(events: Sequence[tuple[AnyEvent, int]]) -> Member | None:
    """The state after a sequence of (event, seq), oldest first."""
    state: Member | None = None
    for event, seq in events:
        state = evolve(state, event, seq)
    return state
