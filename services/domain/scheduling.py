"""Scheduled sends (Recruiter tiers): charged when accepted, delivered at ``send_at``, or cancelled.

``SendInMail`` with ``send_at`` records ``InMailScheduled`` (and spends the credit
then, so schedules cannot overbook a balance). At ``send_at`` the due work
``DeliverScheduledInMail`` records the ``InMailSent`` (it enters the inboxes then)
or, when a block or an opt-out forbids it by then, a ``ScheduledInMailCancelled``
and the credit back. ``CancelScheduledInMail`` is the sender calling it off.
"""

from __future__ import annotations

from datetime import datetime

from contracts.commands import AnyCommand, CancelScheduledInMail, DeliverScheduledInMail, SendInMail
from contracts.events import (
    AnyEvent,
    CreditRefunded,
    FollowUpPlan,
    FreeReason,
    InMailScheduled,
    InMailSent,
    ScheduleCancelReason,
    ScheduledInMailCancelled,
)
from contracts.types import month_of
from services.domain import errors
from services.domain.credits import due_refreshes
from services.domain.rules import (
    Context,
    Decision,
    check_due,
    check_time,
    due_context,
    existing,
    header,
    reachable,
    repeat,
)
from services.domain.state import Member, ScheduledInMail


def check_send_at(member: Member, send_at: datetime, ctx: Context) -> None:
    """Refuse a schedule outside the sender's tier, in the past, or beyond the horizon."""
    if not ctx.policy.tier(member.tier).scheduled_sends:
        raise errors.TierNotAllowed("scheduled sends need a Recruiter or Recruiter Lite tier")
    if send_at <= ctx.now:
        raise errors.InvalidTime(f"send_at {send_at.isoformat()} is not after now ({ctx.now.isoformat()})")
    horizon = ctx.policy.scheduling.horizon
    if send_at - ctx.now > horizon:
        raise errors.InvalidTime(f"send_at is more than {horizon.days} days ahead")


def scheduled(
    sender: Member,
    recipient: Member,
    cmd: SendInMail,
    ctx: Context,
    inmail_id: str,
    charged: bool,
    free_reason: FreeReason | None,
    plan: FollowUpPlan | None,
) -> InMailScheduled:
    """The InMailScheduled of a send accepted for ``cmd.send_at``."""
    assert cmd.send_at is not None
    return InMailScheduled(
        **header(ctx, cmd),
        inmail_id=inmail_id,
        sender_id=sender.member_id,
        recipient_id=recipient.member_id,
        sender_tier=sender.tier,
        subject=cmd.subject,
        body=cmd.body,
        kind=cmd.kind,
        template_id=cmd.template_id,
        follow_up_of=cmd.follow_up_of,
        charged=charged,
        free_reason=free_reason,
        send_at=cmd.send_at,
        automated_follow_up=plan,
    )


def deliver_scheduled_inmail(
    state: Member | None, recipient: Member | None, cmd: DeliverScheduledInMail, ctx: Context
) -> Decision:
    """Due work: deliver a scheduled InMail at its time, or cancel it when it may no longer go."""
    member = existing(state, cmd.member_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    pending = member.scheduled.get(cmd.inmail_id)
    if pending is None:
        raise errors.UnknownInMail(f"{cmd.inmail_id} is not a scheduled InMail of {member.member_id}")
    if pending.outcome_seq is not None:
        return Decision.already(pending.outcome_seq)
    ctx = due_context(member, ctx)
    check_due(pending.scheduled.send_at, ctx, f"InMail {cmd.inmail_id}")
    reason = _forbidden(member, existing(recipient, cmd.recipient_id), pending)
    if reason is not None:
        return Decision(_cancelled(member, pending, reason, cmd, ctx))
    return Decision([_delivered(pending, cmd, ctx)])


def cancel_scheduled_inmail(state: Member | None, cmd: CancelScheduledInMail, ctx: Context) -> Decision:
    """CancelScheduledInMail: the sender calls it off before delivery; the credit comes back."""
    if state is None or cmd.member_id != state.member_id:
        raise errors.UnknownInMail(f"member {cmd.member_id} has no InMail {cmd.inmail_id}")
    if (done := repeat(state, cmd, ctx)) is not None:
        return done
    check_time(state, ctx)
    pending = state.scheduled.get(cmd.inmail_id)
    if pending is None or pending.delivered:
        if cmd.inmail_id in state.inmails:
            raise errors.AlreadySent(f"InMail {cmd.inmail_id} was already sent")
        raise errors.UnknownInMail(f"member {cmd.member_id} has no InMail {cmd.inmail_id}")
    if pending.outcome_seq is not None:
        return Decision.already(pending.outcome_seq)
    return Decision(_cancelled(state, pending, "sender_cancelled", cmd, ctx))


def _forbidden(sender: Member, recipient: Member, pending: ScheduledInMail) -> ScheduleCancelReason | None:
    """Why a scheduled InMail may not be delivered now, if anything forbids it."""
    try:
        reachable(sender, recipient)
    except errors.Blocked:
        return "blocked"
    except errors.RecipientOptedOut:
        return "opted_out"
    original = pending.scheduled.follow_up_of
    if original is not None and sender.inmails[original].responded:
        return "responded"
    return None


def _delivered(pending: ScheduledInMail, cmd: AnyCommand, ctx: Context) -> InMailSent:
    s = pending.scheduled
    return InMailSent(
        **header(ctx, cmd),
        inmail_id=s.inmail_id,
        sender_id=s.sender_id,
        recipient_id=s.recipient_id,
        sender_tier=s.sender_tier,
        subject=s.subject,
        body=s.body,
        kind=s.kind,
        template_id=s.template_id,
        follow_up_of=s.follow_up_of,
        charged=s.charged,
        free_reason=s.free_reason,
        scheduled=True,
        automated_follow_up=None if pending.follow_up_cancelled_seq else s.automated_follow_up,
    )


def _cancelled(
    member: Member, pending: ScheduledInMail, reason: ScheduleCancelReason, cmd: AnyCommand, ctx: Context
) -> list[AnyEvent]:
    """The cancellation, and for a charged InMail the refreshes due and the credit back."""
    s = pending.scheduled
    cancelled = ScheduledInMailCancelled(
        **header(ctx, cmd),
        inmail_id=s.inmail_id,
        sender_id=s.sender_id,
        recipient_id=s.recipient_id,
        reason=reason,
    )
    if not s.charged:
        return [cancelled]
    refreshes: list[AnyEvent] = list(due_refreshes(member, month_of(ctx.now), cmd, ctx))
    refund = CreditRefunded(
        **header(ctx, cmd),
        member_id=member.member_id,
        inmail_id=s.inmail_id,
        response_event_id=cancelled.event_id,
        reason="cancelled",
    )
    return [*refreshes, cancelled, refund]
