"""What the recipient does with an InMail: read, acknowledge, reply, decline; and the refund.

Each of these writes to the *sender's* aggregate, where the InMail lives, so
the refund a response earns is paid by the same append that records the
response: at most once, whatever the concurrency.
"""

from __future__ import annotations

from typing import TypedDict

from contracts.commands import AcknowledgeInMail, AnyCommand, DeclineInMail, MarkInMailRead, RecordReply
from contracts.events import (
    AnyEvent,
    CreditRefunded,
    InMailAcknowledged,
    InMailDeclined,
    InMailRead,
    InMailReplied,
)
from contracts.types import month_of
from services.domain import errors
from services.domain.credits import due_refreshes
from services.domain.rules import Context, Decision, check_body, check_time, header, repeat
from services.domain.state import Member, SentInMail


def mark_inmail_read(state: Member | None, cmd: MarkInMailRead, ctx: Context) -> Decision:
    """MarkInMailRead: the read receipt, recorded once."""
    member, inmail = _received(state, cmd.inmail_id, cmd.member_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    check_time(member, ctx)
    if inmail.read_seq is not None:
        return Decision.already(inmail.read_seq)
    return Decision([InMailRead(**header(ctx, cmd), **_inmail_ids(member, inmail))])


def acknowledge_inmail(state: Member | None, cmd: AcknowledgeInMail, ctx: Context) -> Decision:
    """AcknowledgeInMail: the explicit acknowledgement, recorded once."""
    member, inmail = _received(state, cmd.inmail_id, cmd.member_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    check_time(member, ctx)
    if inmail.acknowledged_seq is not None:
        return Decision.already(inmail.acknowledged_seq)
    return Decision([InMailAcknowledged(**header(ctx, cmd), **_inmail_ids(member, inmail))])


def record_reply(state: Member | None, cmd: RecordReply, ctx: Context) -> Decision:
    """RecordReply: the recipient's reply; refunds a charged InMail within the window, once.

    A reply after a decline is recorded (the recipient changed their mind); the
    credit still comes back only once.
    """
    member, inmail = _received(state, cmd.inmail_id, cmd.member_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    check_body(cmd.body, ctx.policy)
    check_time(member, ctx)
    if inmail.replied_seq is not None:
        raise errors.AlreadyResponded(f"InMail {inmail.inmail_id} already has a reply")
    reply = InMailReplied(**header(ctx, cmd), **_inmail_ids(member, inmail), body=cmd.body)
    return Decision(_with_refund(member, inmail, reply, cmd, ctx))


def decline_inmail(state: Member | None, cmd: DeclineInMail, ctx: Context) -> Decision:
    """DeclineInMail: "not interested"; refunds like a reply."""
    member, inmail = _received(state, cmd.inmail_id, cmd.member_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    check_time(member, ctx)
    if inmail.responded:
        raise errors.AlreadyResponded(f"InMail {inmail.inmail_id} already has a response")
    decline = InMailDeclined(**header(ctx, cmd), **_inmail_ids(member, inmail), reason=cmd.reason)
    return Decision(_with_refund(member, inmail, decline, cmd, ctx))


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
    refreshes: list[AnyEvent] = list(due_refreshes(member, month_of(ctx.now), cmd, ctx))
    refund = CreditRefunded(
        **header(ctx, cmd),
        member_id=member.member_id,
        inmail_id=inmail.inmail_id,
        response_event_id=response.event_id,
    )
    return [*refreshes, response, refund]


def _received(state: Member | None, inmail_id: str, member_id: str) -> tuple[Member, SentInMail]:
    inmail = state.inmails.get(inmail_id) if state is not None else None
    if state is None or inmail is None:
        raise errors.UnknownInMail(f"unknown InMail {inmail_id}")
    if inmail.recipient_id != member_id:
        raise errors.NotRecipient(f"member {member_id} is not the recipient of {inmail_id}")
    return state, inmail


class _InMailIds(TypedDict):
    inmail_id: str
    sender_id: str
    recipient_id: str


def _inmail_ids(sender: Member, inmail: SentInMail) -> _InMailIds:
    return {
        "inmail_id": inmail.inmail_id,
        "sender_id": sender.member_id,
        "recipient_id": inmail.recipient_id,
    }
