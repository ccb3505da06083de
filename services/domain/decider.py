"""The member decider: every command to its decision, every event to its aggregate.

One module per capability holds the decisions (``profile``, ``credits``,
``sending``, ``responses``, ``scheduling``, ``follow_ups``, ``enforcement``),
``rules`` what they share, and ``state`` the
aggregate and its rule-free ``evolve``. All of it is pure: no I/O, no clock,
no id generation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

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
    FollowUpCancelled,
    InMailAcknowledged,
    InMailDeclined,
    InMailRead,
    InMailReplied,
    InMailScheduled,
    InMailSent,
    ScheduledInMailCancelled,
)
from services.domain import credits, enforcement, follow_ups, profile, responses, scheduling, sending
from services.domain.rules import Context, Decision, fingerprint, refuse_erased
from services.domain.state import Member


def decide(
    cmd: AnyCommand, target: Member | None, others: Mapping[str, Member | None], ctx: Context
) -> Decision:
    """Route a command to its decision, given the target aggregate and the members it reads."""
    ctx = dataclasses.replace(ctx, fingerprint=fingerprint(cmd))
    if not isinstance(cmd, EraseMember | RegisterMember):
        # Every member a command names (its target and the members it reads, the one acting
        # on an InMail included) must not be erased; an erasure answers its own repeats.
        refuse_erased(target, *others.values())
    match cmd:
        case RegisterMember():
            return profile.register_member(target, cmd, ctx)
        case ChangeTier():
            return profile.change_tier(target, cmd, ctx)
        case UpdatePreferences():
            return profile.update_preferences(target, cmd, ctx)
        case ConnectMembers():
            return profile.connect_members(target, others.get(cmd.other_member_id), cmd, ctx)
        case BlockMember():
            return profile.block_member(target, others.get(cmd.blocked_member_id), cmd, ctx)
        case RefreshCredits():
            return credits.refresh_credits(target, cmd, ctx)
        case SendInMail():
            return sending.send_inmail(target, others.get(cmd.recipient_id), cmd, ctx)
        case SendBulkInMail():
            return sending.send_bulk_inmail(target, others, cmd, ctx)
        case MarkInMailRead():
            return responses.mark_inmail_read(target, cmd, ctx)
        case AcknowledgeInMail():
            return responses.acknowledge_inmail(target, cmd, ctx)
        case RecordReply():
            return responses.record_reply(target, cmd, ctx)
        case DeclineInMail():
            return responses.decline_inmail(target, cmd, ctx)
        case CancelScheduledInMail():
            return scheduling.cancel_scheduled_inmail(target, cmd, ctx)
        case DeliverScheduledInMail():
            return scheduling.deliver_scheduled_inmail(target, others.get(cmd.recipient_id), cmd, ctx)
        case CancelFollowUp():
            return follow_ups.cancel_follow_up(target, cmd, ctx)
        case SendAutomatedFollowUp():
            return follow_ups.send_automated_follow_up(target, others.get(cmd.recipient_id), cmd, ctx)
        case AssessResponseRate():
            return enforcement.assess_response_rate(target, cmd, ctx)
        case EndBulkSuspension():
            return enforcement.end_bulk_suspension(target, cmd, ctx)
        case EraseMember():
            return profile.erase_member(target, cmd, ctx)
    raise TypeError(f"not a command: {type(cmd).__name__}")


def aggregate_of(event: AnyEvent) -> str:
    """The member whose aggregate records an event."""
    match event:
        case (
            InMailSent()
            | InMailRead()
            | InMailAcknowledged()
            | InMailReplied()
            | InMailDeclined()
            | InMailScheduled()
            | ScheduledInMailCancelled()
            | FollowUpCancelled()
        ):
            return event.sender_id
        case _:
            return event.member_id
