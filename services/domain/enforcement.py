"""The response-rate floor (section 9): assessment periods, warnings and bulk suspensions.

A sender's InMails (sent on a tier the floor applies to) fall into consecutive
periods from 00:00 UTC of the day of the first InMail. A period holding enough
InMails is assessed some days after it ends, counting the responses until then:
under the floor while ``ok`` warns for a warning period, which is assessed the
same way and suspends bulk InMail when under the floor again, else ends the
warning. A suspension ends by itself. Every assessment is an event with its
inputs, decided from event times only, so a replay reproduces every stage.
"""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.commands import AssessResponseRate, EndBulkSuspension
from contracts.events import BulkSuspensionEnded, ResponseRateAssessed, Stage
from contracts.policy import Policy
from contracts.types import Tier
from services.domain import errors
from services.domain.rules import Context, Decision, check_due, due_context, existing, header, repeat
from services.domain.state import Member


def counts_towards_floor(tier: Tier, policy: Policy) -> bool:
    """Whether InMails sent on this tier are assessed."""
    return policy.tier(tier).rate_floor


def period_start(first_sent_at: datetime, sent_at: datetime, policy: Policy) -> datetime:
    """The start of the assessment period that holds an InMail sent at ``sent_at``."""
    anchor = datetime(first_sent_at.year, first_sent_at.month, first_sent_at.day, tzinfo=UTC)
    length = policy.enforcement.period
    return anchor + ((sent_at - anchor) // length) * length


def assessed_at(start: datetime, warning_period: bool, policy: Policy) -> datetime:
    """When a period (or a warning period) starting at ``start`` is due for assessment."""
    rules = policy.enforcement
    return start + (rules.warning if warning_period else rules.period) + rules.assess_after


def check_bulk_allowed(member: Member, ctx: Context) -> None:
    """Refuse bulk InMail while a suspension runs (it ends by itself at its time)."""
    until = member.stage_until
    if member.stage == "suspended" and until is not None and ctx.now < until:
        raise errors.BulkSuspended(
            f"bulk InMail is suspended until {until.isoformat().replace('+00:00', 'Z')}: "
            "the response rate stayed under the floor after a warning"
        )


def assess_response_rate(state: Member | None, cmd: AssessResponseRate, ctx: Context) -> Decision:
    """Due work: assess a period's response rate and move the stage as the floor says."""
    member = existing(state, cmd.member_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    if (seq := member.assessed.get((cmd.period_start, cmd.warning_period))) is not None:
        return Decision.already(seq)
    rules = ctx.policy.enforcement
    at = assessed_at(cmd.period_start, cmd.warning_period, ctx.policy)
    ctx = due_context(member, ctx)
    check_due(at, ctx, "the assessment")
    end = at - rules.assess_after
    sent, responded = _counts(member, cmd.period_start, end, at, ctx.policy)
    rate = responded / sent if sent else 0.0
    under = sent >= rules.min_inmails and rate < rules.rate_floor
    stage: Stage = member.stage
    since, until = member.stage_since, member.stage_until
    if cmd.warning_period:
        stage, since, until = ("suspended", at, at + rules.suspension) if under else ("ok", at, None)
    elif member.stage == "ok" and under:
        stage, since, until = "warned", at, at + rules.warning
    return Decision(
        [
            ResponseRateAssessed(
                **header(ctx, cmd),
                member_id=member.member_id,
                period_start=cmd.period_start,
                period_end=end,
                warning_period=cmd.warning_period,
                sent=sent,
                responded=responded,
                rate=rate,
                threshold=rules.rate_floor,
                min_inmails=rules.min_inmails,
                previous_stage=member.stage,
                stage=stage,
                since=since,
                until=until,
            )
        ]
    )


def end_bulk_suspension(state: Member | None, cmd: EndBulkSuspension, ctx: Context) -> Decision:
    """Due work: a suspension that ran its time ends; the stage is ``ok`` again."""
    member = existing(state, cmd.member_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    until = member.stage_until
    if member.stage != "suspended" or member.stage_since != cmd.since or until is None:
        return Decision.already(member.enforcement_seq)
    ctx = due_context(member, ctx)
    check_due(until, ctx, "the end of the suspension")
    return Decision(
        [BulkSuspensionEnded(**header(ctx, cmd), member_id=member.member_id, since=cmd.since, until=until)]
    )


def _counts(member: Member, start: datetime, end: datetime, by: datetime, policy: Policy) -> tuple[int, int]:
    """InMails sent in [start, end) on an assessed tier, and how many had a response by ``by``."""
    sent = responded = 0
    for inmail in member.inmails.values():
        if start <= inmail.sent_at < end and counts_towards_floor(inmail.sender_tier, policy):
            sent += 1
            if inmail.responded_at is not None and inmail.responded_at <= by:
                responded += 1
    return sent, responded
