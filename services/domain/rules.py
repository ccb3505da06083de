"""What every decision shares: its inputs, its outcome, the event header, and the common checks.

Decisions are pure: the command's time and a supply of fresh ids come in
through ``Context``, so nothing here or in a decision module reads a clock or
mints an id of its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypedDict

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


def header(ctx: Context, cmd: AnyCommand) -> Header:
    """The header of a new event the command causes: a fresh id, the command's time and id."""
    return {
        "event_id": ctx.new_id(),
        # Events speak UTC only, whatever offset a trusted client time came with.
        "occurred_at": utc(ctx.now),
        "command_id": cmd.command_id,
        "policy": ctx.policy.version,
    }


def existing(state: Member | None, member_id: str, *, at: datetime | None = None) -> Member:
    """The member's state; refuses a member not registered (or, given ``at``, not yet then)."""
    if state is None or (at is not None and state.registered_at > at):
        raise errors.UnknownMember(f"unknown member {member_id}")
    return state


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
}
"""The events one of which every successful command of a type writes: a repeat must have too."""


def repeat(member: Member, cmd: AnyCommand) -> Decision | None:
    """The original outcome when the member already recorded this command_id, else None."""
    receipt = member.receipts.get(cmd.command_id)
    if receipt is None:
        return None
    if not receipt.recorded & _RECORDED_BY[type(cmd)]:
        # Answering as a repeat would drop this command silently (or fail to build its reply).
        raise errors.InvalidCommand(
            f"command_id {cmd.command_id} was already used by another command on member "
            f"{member.member_id}"
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
