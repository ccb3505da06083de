"""What every decision shares: its inputs, its outcome, the event header, and the common checks.

Decisions are pure: the command's time and a supply of fresh ids come in
through ``Context``, so nothing here or in a decision module reads a clock or
mints an id of its own.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypedDict

import msgspec

from contracts.commands import (
    AcknowledgeInMail,
    AnyCommand,
    AssessResponseRate,
    BlockMember,
    CancelFollowUp,
    CancelScheduledInMail,
    ChangeTier,
    ConnectMembers,
    DeclineInMail,
    DeliverScheduledInMail,
    EndBulkSuspension,
    EraseMember,
    MarkInMailRead,
    RecordReply,
    RefreshCredits,
    RegisterMember,
    SendAutomatedFollowUp,
    SendBulkInMail,
    SendInMail,
    UpdatePreferences,
)
from contracts.events import (
    AnyEvent,
    BulkSuspensionEnded,
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
    TierChanged,
)
from contracts.policy import CURRENT_POLICY, Policy
from contracts.types import utc
from services.domain import errors
from services.domain.state import EVENT_BITS, Member


@dataclass(frozen=True, slots=True)
class Context:
    """What a decision needs from outside: the command's time and fresh unique ids."""

    now: datetime
    ids: Iterator[str]
    policy: Policy = CURRENT_POLICY
    fingerprint: str = ""
    """The command's ``fingerprint``, computed once by ``decider.decide`` for all its events."""

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


class Header(TypedDict):
    """The fields every event starts with."""

    event_id: str
    occurred_at: datetime
    command_id: str
    policy: int
    fingerprint: str


def header(ctx: Context, cmd: AnyCommand) -> Header:
    """The header of a new event the command causes: a fresh id, the command's time and id."""
    return {
        "event_id": ctx.new_id(),
        # Events speak UTC only, whatever offset a trusted client time came with.
        "occurred_at": utc(ctx.now),
        "command_id": cmd.command_id,
        "policy": ctx.policy.version,
        "fingerprint": ctx.fingerprint,
    }


_canonical = msgspec.json.Encoder()


def fingerprint(cmd: AnyCommand) -> str:
    """What a command asks for, hashed: its type and every field but ``occurred_at``.

    Computed on the decoded command, so key order, spacing and a default written out
    or left out make no difference. ``occurred_at`` is left out: a client retrying
    after a timeout may stamp its attempt anew, and it is still the same request
    (the first attempt's time stands). 96 bits: two different payloads under one
    command_id of one member collide once in 2**96.
    """
    body = _canonical.encode(msgspec.structs.replace(cmd, occurred_at=None))
    return base64.urlsafe_b64encode(hashlib.blake2b(body, digest_size=12).digest()).decode()


def existing(state: Member | None, member_id: str, *, at: datetime | None = None) -> Member:
    """The member's state; refuses a member not registered, or (given ``at``) registered after it."""
    if state is None:
        raise errors.UnknownMember(f"unknown member {member_id}")
    if at is not None and state.registered_at > at:
        raise errors.InvalidTime(
            f"occurred_at {at.isoformat()} is earlier than the registration of member "
            f"{member_id} ({state.registered_at.isoformat()})"
        )
    return state


def refuse_erased(*members: Member | None) -> None:
    """Refuse a command naming an erased member (as target, sender, recipient or actor)."""
    for member in members:
        if member is not None and member.erased_seq is not None:
            raise errors.MemberErased(f"member {member.member_id} was erased")


def _any_of(*kinds: type[Event]) -> int:
    bits = 0
    for kind in kinds:
        bits |= EVENT_BITS[kind]
    return bits


_RECORDED_BY: Mapping[type[AnyCommand], int] = {
    RegisterMember: _any_of(MemberRegistered),
    ChangeTier: _any_of(TierChanged),
    UpdatePreferences: _any_of(PreferencesUpdated),
    ConnectMembers: _any_of(MembersConnected),
    BlockMember: _any_of(MemberBlocked),
    RefreshCredits: _any_of(CreditsRefreshed),
    SendInMail: _any_of(InMailSent, InMailScheduled),
    SendBulkInMail: _any_of(InMailSent),
    MarkInMailRead: _any_of(InMailRead),
    AcknowledgeInMail: _any_of(InMailAcknowledged),
    RecordReply: _any_of(InMailReplied),
    DeclineInMail: _any_of(InMailDeclined),
    CancelScheduledInMail: _any_of(ScheduledInMailCancelled),
    CancelFollowUp: _any_of(FollowUpCancelled),
    DeliverScheduledInMail: _any_of(InMailSent, ScheduledInMailCancelled),
    SendAutomatedFollowUp: _any_of(InMailSent, FollowUpCancelled),
    AssessResponseRate: _any_of(ResponseRateAssessed),
    EndBulkSuspension: _any_of(BulkSuspensionEnded),
    EraseMember: _any_of(MemberErased),
}
"""The events one of which every successful command of a type writes: a repeat must have too."""


def repeat(member: Member, cmd: AnyCommand, ctx: Context) -> Decision | None:
    """The original outcome when the member already recorded this command_id, else None.

    The same command_id asking for something else is refused: answering it as a repeat
    would drop it silently. Receipts recorded before fingerprints were kept are told
    apart by the command type alone.
    """
    receipt = member.receipts.get(cmd.command_id)
    if receipt is None:
        return None
    same_type = receipt.recorded & _RECORDED_BY[type(cmd)]
    if not same_type or (receipt.fingerprint and receipt.fingerprint != ctx.fingerprint):
        raise errors.IdempotencyConflict(
            f"command_id {cmd.command_id} was already used on member {member.member_id} for "
            f"{'another ' + type(cmd).__name__ if same_type else 'another command'}; nothing was "
            "recorded (a retry must send the same payload, a new command a new command_id)"
        )
    return Decision.already(receipt.seq)


def check_time(member: Member, ctx: Context) -> None:
    """Refuse a command earlier than the latest event it would follow."""
    if ctx.now < member.last_event_at:
        raise errors.InvalidTime(
            f"occurred_at {ctx.now.isoformat()} is earlier than the latest event of member "
            f"{member.member_id} ({member.last_event_at.isoformat()})"
        )


def due_context(member: Member, ctx: Context) -> Context:
    """The context of due work on a member: its due time, or the member's latest event's if later.

    Due work is performed at its due time (trusted client time) or when the server's
    clock finds it due; an aggregate's time never runs backwards, so work found late
    (the member moved on meanwhile) is recorded at the member's latest time instead.
    """
    if ctx.now >= member.last_event_at:
        return ctx
    return replace(ctx, now=member.last_event_at)


def check_due(due_at: datetime, ctx: Context, what: str) -> None:
    """Refuse due work asked for before it is due (a process whose clock runs ahead)."""
    if ctx.now < due_at:
        raise errors.InvalidTime(f"{what} is not due before {due_at.isoformat()}")


def check_body(body: str, policy: Policy) -> None:
    """Refuse a blank body, or one longer than the policy allows."""
    # len() counts Unicode code points, not bytes: "é" is one character.
    if not body.strip():
        raise errors.EmptyMessage("the body is empty")
    if len(body) > policy.body_max_chars:
        raise errors.BodyTooLong(
            f"the body has {len(body)} characters, at most {policy.body_max_chars} allowed"
        )


def check_not_blocked(member: Member, other: Member) -> None:
    """Refuse when either member blocked the other."""
    if other.member_id in member.blocked or member.member_id in other.blocked:
        raise errors.Blocked(f"members {member.member_id} and {other.member_id} are blocked")


def check_message(subject: str, body: str, policy: Policy) -> None:
    """Refuse a blank or overlong subject or body."""
    if not subject.strip():
        raise errors.EmptyMessage("the subject is empty")
    if len(subject) > policy.subject_max_chars:
        raise errors.SubjectTooLong(
            f"the subject has {len(subject)} characters, at most {policy.subject_max_chars} allowed"
        )
    check_body(body, policy)


def reachable(sender: Member, recipient: Member) -> FreeReason | None:
    """Why an InMail to ``recipient`` is free (None: it is charged), or why it cannot be sent."""
    check_not_blocked(sender, recipient)
    if recipient.member_id in sender.connections or sender.member_id in recipient.connections:
        return "connection"
    if recipient.inmail_opt_out:
        raise errors.RecipientOptedOut(f"member {recipient.member_id} does not accept InMail")
    if recipient.open_profile:
        return "open_profile"
    return None
