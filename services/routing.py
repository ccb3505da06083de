"""Which member aggregates a command writes and reads.

The decision itself is in ``services.domain``; where its inputs come from is
the command side's business. A command writes exactly one aggregate (its
target) and may read others, never writing them.
"""

from __future__ import annotations

from contracts.commands import (
    AcknowledgeInMail,
    AnyCommand,
    BlockMember,
    CancelFollowUp,
    CancelScheduledInMail,
    ConnectMembers,
    DeclineInMail,
    DeliverScheduledInMail,
    MarkInMailRead,
    RecordReply,
    SendAutomatedFollowUp,
    SendBulkInMail,
    SendInMail,
)


def target_of(cmd: AnyCommand) -> str | None:
    """The member whose aggregate the command writes to; None when an InMail id names it."""
    match cmd:
        case SendInMail() | SendBulkInMail():
            return cmd.sender_id
        case (
            MarkInMailRead()
            | AcknowledgeInMail()
            | RecordReply()
            | DeclineInMail()
            | CancelScheduledInMail()
            | CancelFollowUp()
        ):
            return None
        case _:
            return cmd.member_id


def reads_of(cmd: AnyCommand) -> tuple[str, ...]:
    """Other members whose state the decision reads (never writes)."""
    match cmd:
        case SendInMail() | DeliverScheduledInMail() | SendAutomatedFollowUp():
            return (cmd.recipient_id,)
        case SendBulkInMail():
            return tuple(cmd.recipient_ids)
        case ConnectMembers():
            return (cmd.other_member_id,)
        case BlockMember():
            return (cmd.blocked_member_id,)
        case MarkInMailRead() | AcknowledgeInMail() | RecordReply() | DeclineInMail():
            # The recipient acting: an erased member cannot act any more (MEMBER_ERASED).
            return (cmd.member_id,)
        case _:
            return ()
