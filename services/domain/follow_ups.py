"""Automated follow-ups (Recruiter): planned with a send, sent by themselves unless answered.

A send with ``automated_follow_up`` records a ``FollowUpPlan`` in its event, with
the follow-up's own id. ``after_days`` after delivery the due work
``SendAutomatedFollowUp`` sends it (charged like any InMail) when the recipient
has neither replied nor declined, or records ``FollowUpCancelled`` saying why
not. ``CancelFollowUp`` is the sender calling it off.
"""

from __future__ import annotations

from contracts.commands import AnyCommand, AutomatedFollowUp, CancelFollowUp, SendAutomatedFollowUp
from contracts.events import AnyEvent, FollowUpCancelled, FollowUpCancelReason, FollowUpPlan, InMailSent
from services.domain import errors
from services.domain.credits import charge
from services.domain.ids import new_inmail_id
from services.domain.rules import (
    Context,
    Decision,
    check_due,
    check_message,
    check_time,
    due_context,
    existing,
    header,
    reachable,
    repeat,
)
from services.domain.state import Member, PlannedFollowUp


def check_spec(member: Member, spec: AutomatedFollowUp | None, ctx: Context) -> None:
    """Refuse an automated follow-up outside the sender's tier, or with a bad message."""
    if spec is None:
        return
    if not ctx.policy.tier(member.tier).automated_follow_ups:
        raise errors.TierNotAllowed("automated follow-ups need a Recruiter tier")
    # Decoding checks the current policy's bounds already; a decision under another policy
    # (a what-if replay) holds the command to that policy's.
    rules = ctx.policy.scheduling
    if not rules.follow_up_min_days <= spec.after_days <= rules.follow_up_max_days:
        raise errors.InvalidCommand(
            f"automated_follow_up.after_days is {spec.after_days}, allowed "
            f"{rules.follow_up_min_days}-{rules.follow_up_max_days}"
        )
    check_message(spec.subject, spec.body, ctx.policy)


def plan(member: Member, spec: AutomatedFollowUp | None, ctx: Context) -> FollowUpPlan | None:
    """The plan an InMail carries for its automated follow-up, with the follow-up's id."""
    if spec is None:
        return None
    return FollowUpPlan(
        inmail_id=new_inmail_id(member, ctx), after_days=spec.after_days, subject=spec.subject, body=spec.body
    )


def send_automated_follow_up(
    state: Member | None, recipient: Member | None, cmd: SendAutomatedFollowUp, ctx: Context
) -> Decision:
    """Due work: send the follow-up, or cancel it when a response, a block, an opt-out or the
    balance says it may not go."""
    member = existing(state, cmd.member_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    planned = member.follow_ups.get(cmd.inmail_id)
    if planned is None:
        raise errors.UnknownInMail(f"{cmd.inmail_id} is not a follow-up planned by {member.member_id}")
    if planned.outcome_seq is not None:
        return Decision.already(planned.outcome_seq)
    ctx = due_context(member, ctx)
    check_due(planned.due_at, ctx, f"follow-up {cmd.inmail_id}")
    if member.inmails[planned.follow_up_of].responded:
        return Decision([_cancelled(member, planned, "responded", cmd, ctx)])
    try:
        free_reason = reachable(member, existing(recipient, cmd.recipient_id))
    except errors.Blocked:
        return Decision([_cancelled(member, planned, "blocked", cmd, ctx)])
    except errors.RecipientOptedOut:
        return Decision([_cancelled(member, planned, "opted_out", cmd, ctx)])
    events: list[AnyEvent] = []
    if free_reason is None:
        try:
            events.extend(charge(member, 1, cmd, ctx))
        except (errors.InsufficientCredits, errors.TierNotAllowed):
            return Decision([_cancelled(member, planned, "insufficient_credits", cmd, ctx)])
    original = member.inmails[planned.follow_up_of]
    events.append(
        InMailSent(
            **header(ctx, cmd),
            inmail_id=planned.inmail_id,
            sender_id=member.member_id,
            recipient_id=planned.recipient_id,
            sender_tier=member.tier,
            subject=planned.subject,
            body=planned.body,
            kind=planned.kind,
            template_id=None,
            follow_up_of=original.inmail_id,
            charged=free_reason is None,
            free_reason=free_reason,
            automated=True,
        )
    )
    return Decision(events)


def cancel_follow_up(state: Member | None, cmd: CancelFollowUp, ctx: Context) -> Decision:
    """CancelFollowUp: the sender calls off the automated follow-up of an InMail."""
    if state is None or cmd.member_id != state.member_id:
        raise errors.UnknownInMail(f"member {cmd.member_id} has no InMail {cmd.inmail_id}")
    if (done := repeat(state, cmd, ctx)) is not None:
        return done
    check_time(state, ctx)
    planned = _planned(state, cmd.inmail_id)
    if planned is not None:
        if planned.sent:
            raise errors.AlreadySent(f"the follow-up {planned.inmail_id} was already sent")
        if planned.outcome_seq is not None:
            return Decision.already(planned.outcome_seq)
        return Decision([_cancelled(state, planned, "sender_cancelled", cmd, ctx)])
    scheduled = state.scheduled.get(cmd.inmail_id)
    spec = scheduled.scheduled.automated_follow_up if scheduled is not None else None
    if scheduled is None or spec is None:
        if cmd.inmail_id in state.inmails or scheduled is not None:
            raise errors.InvalidFollowUp(f"InMail {cmd.inmail_id} has no automated follow-up")
        raise errors.UnknownInMail(f"member {cmd.member_id} has no InMail {cmd.inmail_id}")
    if scheduled.follow_up_cancelled_seq is not None:
        return Decision.already(scheduled.follow_up_cancelled_seq)
    if scheduled.outcome_seq is not None:
        # Its InMail was cancelled: no follow-up will ever be planned.
        return Decision.already(scheduled.outcome_seq)
    return Decision(
        [
            FollowUpCancelled(
                **header(ctx, cmd),
                inmail_id=spec.inmail_id,
                follow_up_of=cmd.inmail_id,
                sender_id=state.member_id,
                recipient_id=scheduled.scheduled.recipient_id,
                reason="sender_cancelled",
            )
        ]
    )


def _planned(member: Member, inmail_id: str) -> PlannedFollowUp | None:
    """The follow-up named by its own id or by the id of the InMail it follows."""
    if inmail_id in member.follow_ups:
        return member.follow_ups[inmail_id]
    original = member.inmails.get(inmail_id)
    if original is None or original.automated_follow_up is None:
        return None
    return member.follow_ups[original.automated_follow_up]


def _cancelled(
    member: Member, planned: PlannedFollowUp, reason: FollowUpCancelReason, cmd: AnyCommand, ctx: Context
) -> FollowUpCancelled:
    return FollowUpCancelled(
        **header(ctx, cmd),
        inmail_id=planned.inmail_id,
        follow_up_of=planned.follow_up_of,
        sender_id=member.member_id,
        recipient_id=planned.recipient_id,
        reason=reason,
    )
