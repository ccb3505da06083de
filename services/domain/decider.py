"""The member decider: every command to its decision, every event to its aggregate.

One module per capability holds the decisions (``profile``, ``credits``,
``sending``, ``responses``), ``rules`` what they share, and ``state`` the
aggregate and its rule-free ``evolve``. All of it is pure: no I/O, no clock,
no id generation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

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
    AnyEvent,
    InMailAcknowledged,
    InMailDeclined,
    InMailRead,
    InMailReplied,
    InMailSent,
)
from services.domain import credits, profile, responses, sending
from services.domain.rules import Context, Decision, fingerprint
from services.domain.state import Member


def decide(
    cmd: AnyCommand, target: Member | None, others: Mapping[str, Member | None], ctx: Context
) -> Decision:
    """Route a command to its decision, given the target aggregate and the members it reads."""
    ctx = dataclasses.replace(ctx, fingerprint=fingerprint(cmd))
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
    raise TypeError(f"not a command: {type(cmd).__name__}")


def aggregate_of(event: AnyEvent) -> str:
    """The member whose aggregate records an event."""
    match event:
        case InMailSent() | InMailRead() | InMailAcknowledged() | InMailReplied() | InMailDeclined():
            return event.sender_id
        case _:
            return event.member_id
