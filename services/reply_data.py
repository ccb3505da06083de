"""The data a command's reply carries, shaped from the member state that records its effect."""

from __future__ import annotations

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
from contracts.replies import (
    BlockedData,
    BulkSentData,
    CancelledData,
    ConnectedData,
    InMailData,
    MemberData,
    MemberRegisteredData,
    RefreshedData,
    RespondedData,
    SentData,
    TierChangedData,
)
from services.domain.state import Member


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
            inmail_id = receipt.inmail_ids[0]
            if (later := state.scheduled.get(inmail_id)) is not None:
                s = later.scheduled
                return SentData(inmail_id, s.charged, s.free_reason, credits_left, scheduled_for=s.send_at)
            inmail = state.inmails[inmail_id]
            return SentData(inmail.inmail_id, inmail.charged, inmail.free_reason, credits_left)
        case SendBulkInMail():
            assert receipt is not None, "a send always writes"
            return BulkSentData(list(receipt.inmail_ids), credits_left)
        case MarkInMailRead() | AcknowledgeInMail():
            return InMailData(cmd.inmail_id)
        case RecordReply() | DeclineInMail():
            return RespondedData(cmd.inmail_id, receipt.refunded if receipt else False)
        case CancelScheduledInMail():
            refunded = receipt.refunded if receipt else state.scheduled[cmd.inmail_id].refunded
            return CancelledData(cmd.inmail_id, refunded, credits_left)
        case CancelFollowUp() | DeliverScheduledInMail() | SendAutomatedFollowUp():
            return InMailData(cmd.inmail_id)
        case AssessResponseRate() | EndBulkSuspension() | EraseMember():
            return MemberData(cmd.member_id)
    raise TypeError(f"no reply for {type(cmd).__name__}")
