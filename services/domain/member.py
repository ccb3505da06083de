"""The member aggregate: a member's profile, credits, and every InMail they sent.

Consistency boundary: all credit movements of a member, and the whole life of
each InMail the member sent (read receipts, responses, refunds), live in this
one aggregate, on one subject. So a credit can only be spent, and a refund
only paid, by an append at the aggregate's current version: no credit is spent
twice and no refund paid twice, whatever the concurrency. A SendInMail also
*reads* the recipient (existence, opt-out, Open Profile, blocks, connections)
without writing to it.

``decide_*`` functions hold every rule and are pure: the command's time and a
supply of fresh ids come in through ``Context``. ``evolve`` holds no rule: it
applies what the events say, and is the only code run on replay.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TypedDict

import msgspec

from contracts.commands import (
    AcknowledgeInMail,
    AnyCommand,
    BlockMember,
    ChangeTier,
    ConnectMembers,
    DeclineInMail,
    MarkInMailRead,
    RecordReply,
    RefreshCredits,
    RegisterMember,
    SendBulkInMail,
    SendInMail,
    UpdatePreferences,
)
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
from contracts.policy import CURRENT_POLICY, Policy
from contracts.replies import (
    BlockedData,
    BulkSentData,
    ConnectedData,
    InMailData,
    MemberData,
    MemberRegisteredData,
    RefreshedData,
    RespondedData,
    SentData,
    TierChangedData,
)
from contracts.types import Tier, month_of, next_month, utc
from services.domain import errors

# State ----------------------------------------------------------------------


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


# Evolve: no rules, only what the events say ---------------------------------


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
        receipt = state.receipts[event.command_id] = Receipt(seq=seq, credits_left=state.balance)
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


# Decide: every rule ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Context:
    """What a decision needs from outside: the command's time and fresh unique ids."""

    now: datetime
    ids: Iterator[str]
    policy: Policy = CURRENT_POLICY

    def new_id(self) -> str:
        return next(self.ids)


@dataclass(frozen=True, slots=True)
class Decision:
    """New events to append, or, when there is nothing new, the sequence already recording it."""

    events: list[AnyEvent]
    existing_seq: int = 0

    @staticmethod
    def already(seq: int) -> Decision:
        return Decision([], seq)


def decide_register_member(state: Member | None, cmd: RegisterMember, ctx: Context) -> Decision:
    """RegisterMember: a new member with the first month's allotment."""
    if state is not None:
        if (done := _repeat(state, cmd)) is not None:
            return done
        raise errors.MemberExists(f"member {cmd.member_id} already exists")
    rules = ctx.policy.tier(cmd.tier)
    if cmd.open_profile and not rules.paid:
        raise errors.TierNotAllowed("Open Profile needs a paid tier")
    return Decision(
        [
            MemberRegistered(
                **_header(ctx, cmd),
                member_id=cmd.member_id,
                display_name=cmd.display_name,
                tier=cmd.tier,
                open_profile=cmd.open_profile,
                inmail_opt_out=cmd.inmail_opt_out,
                month=month_of(ctx.now),
                granted=rules.monthly_allotment,
            )
        ]
    )


def decide_change_tier(state: Member | None, cmd: ChangeTier, ctx: Context) -> Decision:
    """ChangeTier: the old balance is forfeited and the new tier's allotment granted."""
    member = _existing(state, cmd.member_id)
    if (done := _repeat(member, cmd)) is not None:
        return done
    _check_time(member, ctx)
    if cmd.tier == member.tier:
        return Decision.already(member.tier_seq)
    events: list[AnyEvent] = list(_catch_up(member, month_of(ctx.now), cmd, ctx))
    balance = _balance_after(member, events)
    if balance > 0:
        events.append(
            CreditsForfeited(
                **_header(ctx, cmd), member_id=member.member_id, amount=balance, reason="tier_change"
            )
        )
    rules = ctx.policy.tier(cmd.tier)
    events.append(
        TierChanged(
            **_header(ctx, cmd),
            member_id=member.member_id,
            old_tier=member.tier,
            tier=cmd.tier,
            month=month_of(ctx.now),
            granted=rules.monthly_allotment,
        )
    )
    if member.open_profile and not rules.paid:
        # Open Profile needs a paid tier: a downgrade to one that is not turns it off.
        events.append(
            PreferencesUpdated(
                **_header(ctx, cmd),
                member_id=member.member_id,
                open_profile=False,
                inmail_opt_out=member.inmail_opt_out,
            )
        )
    return Decision(events)


def decide_update_preferences(state: Member | None, cmd: UpdatePreferences, ctx: Context) -> Decision:
    """UpdatePreferences: Open Profile on paid tiers only; InMail opt-out for anyone."""
    member = _existing(state, cmd.member_id)
    if (done := _repeat(member, cmd)) is not None:
        return done
    _check_time(member, ctx)
    open_profile = member.open_profile if cmd.open_profile is None else cmd.open_profile
    opt_out = member.inmail_opt_out if cmd.inmail_opt_out is None else cmd.inmail_opt_out
    if open_profile and not ctx.policy.tier(member.tier).paid:
        raise errors.TierNotAllowed("Open Profile needs a paid tier")
    if (open_profile, opt_out) == (member.open_profile, member.inmail_opt_out):
        return Decision.already(member.preferences_seq)
    return Decision(
        [
            PreferencesUpdated(
                **_header(ctx, cmd),
                member_id=member.member_id,
                open_profile=open_profile,
                inmail_opt_out=opt_out,
            )
        ]
    )


def decide_connect_members(
    state: Member | None, other: Member | None, cmd: ConnectMembers, ctx: Context
) -> Decision:
    """ConnectMembers: a 1st-degree connection both ways, recorded on ``member_id``."""
    member = _existing(state, cmd.member_id)
    if (done := _repeat(member, cmd)) is not None:
        return done
    peer = _existing(other, cmd.other_member_id, at=ctx.now)
    _check_time(member, ctx)
    _check_not_blocked(member, peer)
    existing = member.connections.get(peer.member_id) or peer.connections.get(member.member_id)
    if existing:
        return Decision.already(existing)
    return Decision(
        [MembersConnected(**_header(ctx, cmd), member_id=member.member_id, other_member_id=peer.member_id)]
    )


def decide_block_member(
    state: Member | None, other: Member | None, cmd: BlockMember, ctx: Context
) -> Decision:
    """BlockMember: no InMail between the two, either way, from now on."""
    member = _existing(state, cmd.member_id)
    if (done := _repeat(member, cmd)) is not None:
        return done
    blocked = _existing(other, cmd.blocked_member_id, at=ctx.now)
    _check_time(member, ctx)
    if blocked.member_id in member.blocked:
        return Decision.already(member.blocked[blocked.member_id])
    return Decision(
        [MemberBlocked(**_header(ctx, cmd), member_id=member.member_id, blocked_member_id=blocked.member_id)]
    )


def decide_refresh_credits(state: Member | None, cmd: RefreshCredits, ctx: Context) -> Decision:
    """RefreshCredits: the month's allotment (and every skipped month before it), once."""
    member = _existing(state, cmd.member_id)
    if (done := _repeat(member, cmd)) is not None:
        return done
    _check_time(member, ctx)
    if cmd.month > month_of(ctx.now):
        raise errors.InvalidTime(f"month {cmd.month} has not begun")
    if cmd.month <= member.last_refreshed_month:
        # Months are refreshed in order, so an earlier month is already done; a month
        # before registration is covered by the registration's grant.
        seq = member.refreshed.get(cmd.month, member.registered_seq)
        return Decision.already(seq)
    return Decision(list(_catch_up(member, cmd.month, cmd, ctx)))


def decide_send_inmail(
    sender: Member | None, recipient: Member | None, cmd: SendInMail, ctx: Context
) -> Decision:
    """SendInMail: one InMail, free to connections and Open Profile members, else one credit."""
    _check_message(cmd.subject, cmd.body, ctx.policy)
    member = _existing(sender, cmd.sender_id)
    if (done := _repeat(member, cmd)) is not None:
        return done
    if cmd.recipient_id == cmd.sender_id:
        raise errors.SelfMessage("a member cannot send InMail to themself")
    target = _existing(recipient, cmd.recipient_id, at=ctx.now)
    _check_time(member, ctx)
    free_reason = _reachable(member, target)
    if cmd.follow_up_of is not None:
        _check_follow_up(member, cmd.follow_up_of, target.member_id)
    charged = free_reason is None
    events: list[AnyEvent] = []
    if charged:
        events.extend(_charge(member, 1, cmd, ctx))
    events.append(_sent(member, target, cmd, ctx, charged, free_reason))
    return Decision(events)


def decide_send_bulk_inmail(
    sender: Member | None,
    recipients: Mapping[str, Member | None],
    cmd: SendBulkInMail,
    ctx: Context,
) -> Decision:
    """SendBulkInMail: one InMail per recipient, all or nothing, Recruiter tiers only."""
    _check_message(cmd.subject, cmd.body, ctx.policy)
    member = _existing(sender, cmd.sender_id)
    if (done := _repeat(member, cmd)) is not None:
        return done
    if not ctx.policy.tier(member.tier).bulk:
        raise errors.TierNotAllowed("bulk InMail needs a Recruiter tier")
    if cmd.sender_id in cmd.recipient_ids:
        raise errors.SelfMessage("a member cannot send InMail to themself")
    targets = [_existing(recipients.get(rid), rid, at=ctx.now) for rid in cmd.recipient_ids]
    _check_time(member, ctx)
    reasons = [_reachable(member, target) for target in targets]
    charged_count = sum(reason is None for reason in reasons)
    events: list[AnyEvent] = []
    if charged_count:
        events.extend(_charge(member, charged_count, cmd, ctx))
    for target, reason in zip(targets, reasons, strict=True):
        events.append(_sent(member, target, cmd, ctx, reason is None, reason))
    return Decision(events)


def decide_mark_inmail_read(state: Member | None, cmd: MarkInMailRead, ctx: Context) -> Decision:
    """MarkInMailRead: the read receipt, recorded once."""
    member, inmail = _received(state, cmd.inmail_id, cmd.member_id)
    if (done := _repeat(member, cmd)) is not None:
        return done
    _check_time(member, ctx)
    if inmail.read_seq is not None:
        return Decision.already(inmail.read_seq)
    return Decision([InMailRead(**_header(ctx, cmd), **_inmail_ids(member, inmail))])


def decide_acknowledge_inmail(state: Member | None, cmd: AcknowledgeInMail, ctx: Context) -> Decision:
    """AcknowledgeInMail: the explicit acknowledgement, recorded once."""
    member, inmail = _received(state, cmd.inmail_id, cmd.member_id)
    if (done := _repeat(member, cmd)) is not None:
        return done
    _check_time(member, ctx)
    if inmail.acknowledged_seq is not None:
        return Decision.already(inmail.acknowledged_seq)
    return Decision([InMailAcknowledged(**_header(ctx, cmd), **_inmail_ids(member, inmail))])


def decide_record_reply(state: Member | None, cmd: RecordReply, ctx: Context) -> Decision:
    """RecordReply: the recipient's reply; refunds a charged InMail within the window, once.

    A reply after a decline is recorded (the recipient changed their mind); the
    credit still comes back only once.
    """
    member, inmail = _received(state, cmd.inmail_id, cmd.member_id)
    if (done := _repeat(member, cmd)) is not None:
        return done
    _check_body(cmd.body, ctx.policy)
    _check_time(member, ctx)
    if inmail.replied_seq is not None:
        raise errors.AlreadyResponded(f"InMail {inmail.inmail_id} already has a reply")
    reply = InMailReplied(**_header(ctx, cmd), **_inmail_ids(member, inmail), body=cmd.body)
    return Decision(_with_refund(member, inmail, reply, cmd, ctx))


def decide_decline_inmail(state: Member | None, cmd: DeclineInMail, ctx: Context) -> Decision:
    """DeclineInMail: "not interested"; refunds like a reply."""
    member, inmail = _received(state, cmd.inmail_id, cmd.member_id)
    if (done := _repeat(member, cmd)) is not None:
        return done
    _check_time(member, ctx)
    if inmail.responded:
        raise errors.AlreadyResponded(f"InMail {inmail.inmail_id} already has a response")
    decline = InMailDeclined(**_header(ctx, cmd), **_inmail_ids(member, inmail), reason=cmd.reason)
    return Decision(_with_refund(member, inmail, decline, cmd, ctx))


# Replies --------------------------------------------------------------------


def reply_data(state: Member, cmd: AnyCommand) -> msgspec.Struct:
    """The reply data of a command whose effect ``state`` records.

    A command that wrote events answers from its receipt, so a repeat of it gets
    the original answer; one that found its effect already there answers from
    the state.
    """
    receipt = state.receipts.get(cmd.command_id)
    credits_left = receipt.credits_left if receipt else state.balance
    match cmd:
        case RegisterMember():
            return MemberRegisteredData(cmd.member_id, credits_left)
        case ChangeTier():
            return TierChangedData(cmd.member_id, cmd.tier, credits_left)
        case UpdatePreferences():
            return MemberData(cmd.member_id)
        case ConnectMembers():
            return ConnectedData(cmd.member_id, cmd.other_member_id)
        case BlockMember():
            return BlockedData(cmd.member_id, cmd.blocked_member_id)
        case RefreshCredits():
            return RefreshedData(cmd.member_id, cmd.month, credits_left)
        case SendInMail():
            assert receipt is not None, "a send always writes"
            inmail = state.inmails[receipt.inmail_ids[0]]
            return SentData(inmail.inmail_id, inmail.charged, inmail.free_reason, credits_left)
        case SendBulkInMail():
            assert receipt is not None, "a send always writes"
            return BulkSentData(list(receipt.inmail_ids), credits_left)
        case MarkInMailRead() | AcknowledgeInMail():
            return InMailData(cmd.inmail_id)
        case RecordReply() | DeclineInMail():
            return RespondedData(cmd.inmail_id, receipt.refunded if receipt else False)
    raise TypeError(f"no reply for {type(cmd).__name__}")


def inmail_id_prefix(registered_seq: int) -> str:
    """The routing prefix of the InMail ids a member creates.

    An InMail lives in its sender's aggregate. Its id starts with the stream
    sequence of the sender's registration (base 36), so a command naming only the
    InMail finds the sender with one read, without an index that could lag.
    """
    return _base36(registered_seq)


def registered_seq_of(inmail_id: str) -> int | None:
    """The sender's registration sequence encoded in an InMail id, if it has one."""
    prefix, sep, _ = inmail_id.partition("-")
    if not sep or not prefix or len(prefix) > 13:
        return None
    try:
        return int(prefix, 36)
    except ValueError:
        return None


# Rules shared by several decisions -------------------------------------------


class _Header(TypedDict):
    event_id: str
    occurred_at: datetime
    command_id: str
    policy: int


class _InMailIds(TypedDict):
    inmail_id: str
    sender_id: str
    recipient_id: str


def _header(ctx: Context, cmd: AnyCommand) -> _Header:
    return {
        "event_id": ctx.new_id(),
        # Events speak UTC only, whatever offset a trusted client time came with.
        "occurred_at": utc(ctx.now),
        "command_id": cmd.command_id,
        "policy": ctx.policy.version,
    }


def _existing(state: Member | None, member_id: str, *, at: datetime | None = None) -> Member:
    if state is None or (at is not None and state.registered_at > at):
        raise errors.UnknownMember(f"unknown member {member_id}")
    return state


_RECORDED_BY: Mapping[type[AnyCommand], type[Event]] = {
    RegisterMember: MemberRegistered,
    ChangeTier: TierChanged,
    UpdatePreferences: PreferencesUpdated,
    ConnectMembers: MembersConnected,
    BlockMember: MemberBlocked,
    RefreshCredits: CreditsRefreshed,
    SendInMail: InMailSent,
    SendBulkInMail: InMailSent,
    MarkInMailRead: InMailRead,
    AcknowledgeInMail: InMailAcknowledged,
    RecordReply: InMailReplied,
    DeclineInMail: InMailDeclined,
}
"""The event every successful command of a type writes: a repeat must have written it too."""


def _repeat(member: Member, cmd: AnyCommand) -> Decision | None:
    receipt = member.receipts.get(cmd.command_id)
    if receipt is None:
        return None
    if not receipt.recorded & EVENT_BITS[_RECORDED_BY[type(cmd)]]:
        # Answering as a repeat would drop this command silently (or fail to build its reply).
        raise errors.InvalidCommand(
            f"command_id {cmd.command_id} was already used by another command on member "
            f"{member.member_id}"
        )
    return Decision.already(receipt.seq)


def _check_time(member: Member, ctx: Context) -> None:
    if ctx.now < member.last_event_at:
        raise errors.InvalidTime(
            f"occurred_at {ctx.now.isoformat()} is earlier than the latest event of member "
            f"{member.member_id} ({member.last_event_at.isoformat()})"
        )


def _check_message(subject: str, body: str, policy: Policy) -> None:
    if not subject.strip():
        raise errors.EmptyMessage("the subject is empty")
    if len(subject) > policy.subject_max_chars:
        raise errors.SubjectTooLong(
            f"the subject has {len(subject)} characters, at most {policy.subject_max_chars} allowed"
        )
    _check_body(body, policy)


def _check_body(body: str, policy: Policy) -> None:
    # len() counts Unicode code points, not bytes: "é" is one character.
    if not body.strip():
        raise errors.EmptyMessage("the body is empty")
    if len(body) > policy.body_max_chars:
        raise errors.BodyTooLong(
            f"the body has {len(body)} characters, at most {policy.body_max_chars} allowed"
        )


def _check_not_blocked(member: Member, other: Member) -> None:
    if other.member_id in member.blocked or member.member_id in other.blocked:
        raise errors.Blocked(f"members {member.member_id} and {other.member_id} are blocked")


def _reachable(sender: Member, recipient: Member) -> FreeReason | None:
    """Why an InMail to ``recipient`` is free (None: it is charged), or why it cannot be sent."""
    _check_not_blocked(sender, recipient)
    if recipient.member_id in sender.connections or sender.member_id in recipient.connections:
        return "connection"
    if recipient.inmail_opt_out:
        raise errors.RecipientOptedOut(f"member {recipient.member_id} does not accept InMail")
    if recipient.open_profile:
        return "open_profile"
    return None


def _check_follow_up(sender: Member, original_id: str, recipient_id: str) -> None:
    original = sender.inmails.get(original_id)
    if original is None:
        raise errors.InvalidFollowUp(f"{original_id} is not an InMail of {sender.member_id}")
    if original.recipient_id != recipient_id:
        raise errors.InvalidFollowUp(f"{original_id} was sent to another member")
    if original.responded:
        raise errors.InvalidFollowUp(f"{original_id} already has a response")
    if original.followed_up:
        raise errors.InvalidFollowUp(f"{original_id} already has a follow-up")


def _charge(member: Member, count: int, cmd: AnyCommand, ctx: Context) -> list[AnyEvent]:
    """The refreshes due before spending ``count`` credits; refuses when they do not cover it."""
    if not ctx.policy.tier(member.tier).paid:
        raise errors.TierNotAllowed(
            "a free account sends InMail only to connections and Open Profile members"
        )
    refreshes: list[AnyEvent] = list(_catch_up(member, month_of(ctx.now), cmd, ctx))
    balance = _balance_after(member, refreshes)
    cost = count * ctx.policy.inmail_cost
    if balance < cost:
        raise errors.InsufficientCredits(f"{cost} credit(s) needed, {balance} left")
    return refreshes


def _catch_up(member: Member, up_to_month: str, cmd: AnyCommand, ctx: Context) -> Iterator[CreditsRefreshed]:
    """A refresh for every month after the last refreshed one, up to ``up_to_month``."""
    rules = ctx.policy.tier(member.tier)
    balance = member.balance
    month = member.last_refreshed_month
    while month < up_to_month:
        month = next_month(month)
        total = balance + rules.monthly_allotment
        forfeited = max(0, total - rules.cap)
        balance = total - forfeited
        yield CreditsRefreshed(
            **_header(ctx, cmd),
            member_id=member.member_id,
            month=month,
            tier=member.tier,
            granted=rules.monthly_allotment,
            forfeited=forfeited,
        )


def _balance_after(member: Member, events: Sequence[AnyEvent]) -> int:
    balance = member.balance
    for event in events:
        if isinstance(event, CreditsRefreshed):
            balance += event.granted - event.forfeited
    return balance


def _sent(
    sender: Member,
    recipient: Member,
    cmd: SendInMail | SendBulkInMail,
    ctx: Context,
    charged: bool,
    free_reason: FreeReason | None,
) -> InMailSent:
    return InMailSent(
        **_header(ctx, cmd),
        inmail_id=f"{inmail_id_prefix(sender.registered_seq)}-{ctx.new_id()}",
        sender_id=sender.member_id,
        recipient_id=recipient.member_id,
        sender_tier=sender.tier,
        subject=cmd.subject,
        body=cmd.body,
        kind=cmd.kind,
        template_id=cmd.template_id,
        follow_up_of=cmd.follow_up_of if isinstance(cmd, SendInMail) else None,
        charged=charged,
        free_reason=free_reason,
        bulk=isinstance(cmd, SendBulkInMail),
    )


def _received(state: Member | None, inmail_id: str, member_id: str) -> tuple[Member, SentInMail]:
    inmail = state.inmails.get(inmail_id) if state is not None else None
    if state is None or inmail is None:
        raise errors.UnknownInMail(f"unknown InMail {inmail_id}")
    if inmail.recipient_id != member_id:
        raise errors.NotRecipient(f"member {member_id} is not the recipient of {inmail_id}")
    return state, inmail


def _inmail_ids(sender: Member, inmail: SentInMail) -> _InMailIds:
    return {
        "inmail_id": inmail.inmail_id,
        "sender_id": sender.member_id,
        "recipient_id": inmail.recipient_id,
    }


def _with_refund(
    member: Member,
    inmail: SentInMail,
    response: InMailReplied | InMailDeclined,
    cmd: AnyCommand,
    ctx: Context,
) -> list[AnyEvent]:
    """The response, preceded by due refreshes and followed by the refund when it earns one."""
    in_window = ctx.now - inmail.sent_at <= ctx.policy.refund_window
    if not (inmail.charged and not inmail.refunded and in_window):
        return [response]
    refreshes: list[AnyEvent] = list(_catch_up(member, month_of(ctx.now), cmd, ctx))
    refund = CreditRefunded(
        **_header(ctx, cmd),
        member_id=member.member_id,
        inmail_id=inmail.inmail_id,
        response_event_id=response.event_id,
    )
    return [*refreshes, response, refund]


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if number == 0:
        return "0"
    out = []
    while number:
        number, rest = divmod(number, 36)
        out.append(digits[rest])
    return "".join(reversed(out))


# Dispatch -------------------------------------------------------------------


def target_of(cmd: AnyCommand) -> str | None:
    """The member whose aggregate the command writes to; None when an InMail id names it."""
    match cmd:
        case SendInMail() | SendBulkInMail():
            return cmd.sender_id
        case MarkInMailRead() | AcknowledgeInMail() | RecordReply() | DeclineInMail():
            return None
        case _:
            return cmd.member_id


def reads_of(cmd: AnyCommand) -> tuple[str, ...]:
    """Other members whose state the decision reads (never writes)."""
    match cmd:
        case SendInMail():
            return (cmd.recipient_id,)
        case SendBulkInMail():
            return tuple(cmd.recipient_ids)
        case ConnectMembers():
            return (cmd.other_member_id,)
        case BlockMember():
            return (cmd.blocked_member_id,)
        case _:
            return ()


def decide(
    cmd: AnyCommand, target: Member | None, others: Mapping[str, Member | None], ctx: Context
) -> Decision:
    """Route a command to its decision, given the target aggregate and the members it reads."""
    match cmd:
        case RegisterMember():
            return decide_register_member(target, cmd, ctx)
        case ChangeTier():
            return decide_change_tier(target, cmd, ctx)
        case UpdatePreferences():
            return decide_update_preferences(target, cmd, ctx)
        case ConnectMembers():
            return decide_connect_members(target, others.get(cmd.other_member_id), cmd, ctx)
        case BlockMember():
            return decide_block_member(target, others.get(cmd.blocked_member_id), cmd, ctx)
        case RefreshCredits():
            return decide_refresh_credits(target, cmd, ctx)
        case SendInMail():
            return decide_send_inmail(target, others.get(cmd.recipient_id), cmd, ctx)
        case SendBulkInMail():
            return decide_send_bulk_inmail(target, others, cmd, ctx)
        case MarkInMailRead():
            return decide_mark_inmail_read(target, cmd, ctx)
        case AcknowledgeInMail():
            return decide_acknowledge_inmail(target, cmd, ctx)
        case RecordReply():
            return decide_record_reply(target, cmd, ctx)
        case DeclineInMail():
            return decide_decline_inmail(target, cmd, ctx)
    raise TypeError(f"not a command: {type(cmd).__name__}")


def aggregate_of(event: AnyEvent) -> str:
    """The member whose aggregate records an event."""
    match event:
        case InMailSent() | InMailRead() | InMailAcknowledged() | InMailReplied() | InMailDeclined():
            return event.sender_id
        case _:
            return event.member_id
