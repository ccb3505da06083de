"""Sending InMail: one (SendInMail) or one per recipient (SendBulkInMail).

A send writes to the sender's aggregate only. It *reads* each recipient
(existence, opt-out, Open Profile, blocks, connections) without writing to it:
what makes an InMail free or refused is decided here, from both states.
"""

from __future__ import annotations

from collections.abc import Mapping

from contracts.commands import SendBulkInMail, SendInMail
from contracts.events import AnyEvent, FreeReason, InMailSent
from contracts.policy import Policy
from services.domain import errors
from services.domain.credits import charge
from services.domain.rules import (
    Context,
    Decision,
    check_body,
    check_not_blocked,
    check_time,
    existing,
    header,
    repeat,
)
from services.domain.state import Member


def send_inmail(sender: Member | None, recipient: Member | None, cmd: SendInMail, ctx: Context) -> Decision:
    """SendInMail: one InMail, free to connections and Open Profile members, else one credit."""
    _check_message(cmd.subject, cmd.body, ctx.policy)
    member = existing(sender, cmd.sender_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    if cmd.recipient_id == cmd.sender_id:
        raise errors.SelfMessage("a member cannot send InMail to themself")
    target = existing(recipient, cmd.recipient_id, at=ctx.now)
    check_time(member, ctx)
    free_reason = _reachable(member, target)
    if cmd.follow_up_of is not None:
        _check_follow_up(member, cmd.follow_up_of, target.member_id)
    charged = free_reason is None
    events: list[AnyEvent] = []
    if charged:
        events.extend(charge(member, 1, cmd, ctx))
    events.append(_sent(member, target, cmd, ctx, charged, free_reason))
    return Decision(events)


def send_bulk_inmail(
    sender: Member | None,
    recipients: Mapping[str, Member | None],
    cmd: SendBulkInMail,
    ctx: Context,
) -> Decision:
    """SendBulkInMail: one InMail per recipient, all or nothing, Recruiter tiers only."""
    _check_message(cmd.subject, cmd.body, ctx.policy)
    member = existing(sender, cmd.sender_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    if not ctx.policy.tier(member.tier).bulk:
        raise errors.TierNotAllowed("bulk InMail needs a Recruiter tier")
    if cmd.sender_id in cmd.recipient_ids:
        raise errors.SelfMessage("a member cannot send InMail to themself")
    targets = [existing(recipients.get(rid), rid, at=ctx.now) for rid in cmd.recipient_ids]
    check_time(member, ctx)
    reasons = [_reachable(member, target) for target in targets]
    charged_count = sum(reason is None for reason in reasons)
    events: list[AnyEvent] = []
    if charged_count:
        events.extend(charge(member, charged_count, cmd, ctx))
    for target, reason in zip(targets, reasons, strict=True):
        events.append(_sent(member, target, cmd, ctx, reason is None, reason))
    return Decision(events)


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


def _check_message(subject: str, body: str, policy: Policy) -> None:
    if not subject.strip():
        raise errors.EmptyMessage("the subject is empty")
    if len(subject) > policy.subject_max_chars:
        raise errors.SubjectTooLong(
            f"the subject has {len(subject)} characters, at most {policy.subject_max_chars} allowed"
        )
    check_body(body, policy)


def _reachable(sender: Member, recipient: Member) -> FreeReason | None:
    """Why an InMail to ``recipient`` is free (None: it is charged), or why it cannot be sent."""
    check_not_blocked(sender, recipient)
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


def _sent(
    sender: Member,
    recipient: Member,
    cmd: SendInMail | SendBulkInMail,
    ctx: Context,
    charged: bool,
    free_reason: FreeReason | None,
) -> InMailSent:
    return InMailSent(
        **header(ctx, cmd),
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


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if number == 0:
        return "0"
    out = []
    while number:
        number, rest = divmod(number, 36)
        out.append(digits[rest])
    return "".join(reversed(out))
