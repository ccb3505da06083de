"""Sending InMail: one (SendInMail) or one per recipient (SendBulkInMail), now or scheduled.

A send writes to the sender's aggregate only. It *reads* each recipient
(existence, opt-out, Open Profile, blocks, connections) without writing to it:
what makes an InMail free or refused is decided here, from both states. A
scheduled send is decided (and charged) the same way now; ``scheduling``
delivers it later.
"""

from __future__ import annotations

from collections.abc import Mapping

from contracts.commands import SendBulkInMail, SendInMail
from contracts.events import AnyEvent, FollowUpPlan, FreeReason, InMailSent
from services.domain import enforcement, errors, follow_ups, scheduling
from services.domain.credits import charge
from services.domain.ids import new_inmail_id
from services.domain.rules import (
    Context,
    Decision,
    check_message,
    check_time,
    existing,
    header,
    reachable,
    repeat,
)
from services.domain.state import Member


def send_inmail(sender: Member | None, recipient: Member | None, cmd: SendInMail, ctx: Context) -> Decision:
    """SendInMail: one InMail, free to connections and Open Profile members, else one credit."""
    check_message(cmd.subject, cmd.body, ctx.policy)
    member = existing(sender, cmd.sender_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    if cmd.recipient_id == cmd.sender_id:
        raise errors.SelfMessage("a member cannot send InMail to themself")
    target = existing(recipient, cmd.recipient_id, at=ctx.now)
    check_time(member, ctx)
    if cmd.send_at is not None:
        scheduling.check_send_at(member, cmd.send_at, ctx)
    follow_ups.check_spec(member, cmd.automated_follow_up, ctx)
    free_reason = reachable(member, target)
    if cmd.follow_up_of is not None:
        _check_follow_up(member, cmd.follow_up_of, target.member_id)
    charged = free_reason is None
    events: list[AnyEvent] = []
    if charged:
        events.extend(charge(member, 1, cmd, ctx))
    inmail_id = new_inmail_id(member, ctx)
    plan = follow_ups.plan(member, cmd.automated_follow_up, ctx)
    if cmd.send_at is not None:
        events.append(scheduling.scheduled(member, target, cmd, ctx, inmail_id, charged, free_reason, plan))
    else:
        events.append(sent(member, target, cmd, ctx, inmail_id, charged, free_reason, plan))
    return Decision(events)


def send_bulk_inmail(
    sender: Member | None,
    recipients: Mapping[str, Member | None],
    cmd: SendBulkInMail,
    ctx: Context,
) -> Decision:
    """SendBulkInMail: one InMail per recipient, all or nothing, Recruiter tiers only."""
    check_message(cmd.subject, cmd.body, ctx.policy)
    member = existing(sender, cmd.sender_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    if not ctx.policy.tier(member.tier).bulk:
        raise errors.TierNotAllowed("bulk InMail needs a Recruiter tier")
    fewest, most = ctx.policy.bulk_min_recipients, ctx.policy.bulk_max_recipients
    if not fewest <= len(cmd.recipient_ids) <= most:
        # Decoding checks the current policy's bounds; another policy's are checked here.
        raise errors.InvalidCommand(
            f"recipient_ids has {len(cmd.recipient_ids)} members, allowed {fewest}-{most}"
        )
    if cmd.sender_id in cmd.recipient_ids:
        raise errors.SelfMessage("a member cannot send InMail to themself")
    targets = [existing(recipients.get(rid), rid, at=ctx.now) for rid in cmd.recipient_ids]
    check_time(member, ctx)
    enforcement.check_bulk_allowed(member, ctx)
    follow_ups.check_spec(member, cmd.automated_follow_up, ctx)
    reasons = [reachable(member, target) for target in targets]
    charged_count = sum(reason is None for reason in reasons)
    events: list[AnyEvent] = []
    if charged_count:
        events.extend(charge(member, charged_count, cmd, ctx))
    for target, reason in zip(targets, reasons, strict=True):
        inmail_id = new_inmail_id(member, ctx)
        plan = follow_ups.plan(member, cmd.automated_follow_up, ctx)
        events.append(sent(member, target, cmd, ctx, inmail_id, reason is None, reason, plan))
    return Decision(events)


def sent(
    sender: Member,
    recipient: Member,
    cmd: SendInMail | SendBulkInMail,
    ctx: Context,
    inmail_id: str,
    charged: bool,
    free_reason: FreeReason | None,
    plan: FollowUpPlan | None,
) -> InMailSent:
    """The InMailSent of a send decided now."""
    return InMailSent(
        **header(ctx, cmd),
        inmail_id=inmail_id,
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
        automated_follow_up=plan,
    )


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
