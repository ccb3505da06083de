"""Credits: the monthly refresh, the refreshes of missed months, and charging for a send.

A month's refresh is recorded before any other credit movement of the member
in that month. Nothing runs at the turn of a month inside the domain: a
decision that moves credits first adds the refreshes due since the last one
(``due_refreshes``), so the order holds whenever the command comes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from contracts.commands import AnyCommand, RefreshCredits
from contracts.events import AnyEvent, CreditsRefreshed
from contracts.types import month_of, next_month
from services.domain import errors
from services.domain.rules import Context, Decision, check_time, existing, header, repeat
from services.domain.state import Member


def refresh_credits(state: Member | None, cmd: RefreshCredits, ctx: Context) -> Decision:
    """RefreshCredits: the month's allotment (and every missed month's before it), once."""
    # A month yet to begin is refused whoever the member: the command is not valid yet.
    # (``inmail simulate`` relies on it to learn, writing nothing, whose clock decides.)
    if cmd.month > month_of(ctx.now):
        raise errors.InvalidTime(f"month {cmd.month} has not begun")
    member = existing(state, cmd.member_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    check_time(member, ctx)
    if cmd.month <= member.last_refreshed_month:
        # Months are refreshed in order, so an earlier month is already done; a month
        # before registration is covered by the registration's grant.
        seq = member.refreshed.get(cmd.month, member.registered_seq)
        return Decision.already(seq)
    return Decision(list(due_refreshes(member, cmd.month, cmd, ctx)))


def charge(member: Member, count: int, cmd: AnyCommand, ctx: Context) -> list[AnyEvent]:
    """The refreshes due before spending ``count`` credits; refuses when they do not cover it."""
    if not ctx.policy.tier(member.tier).paid:
        raise errors.TierNotAllowed(
            "a free account sends InMail only to connections and Open Profile members"
        )
    refreshes: list[AnyEvent] = list(due_refreshes(member, month_of(ctx.now), cmd, ctx))
    balance = balance_after(member, refreshes)
    cost = count * ctx.policy.inmail_cost
    if balance < cost:
        raise errors.InsufficientCredits(f"{cost} credit(s) needed, {balance} left")
    return refreshes


def due_refreshes(
    member: Member, up_to_month: str, cmd: AnyCommand, ctx: Context
) -> Iterator[CreditsRefreshed]:
    """A refresh for every month after the last refreshed one, up to ``up_to_month``."""
    rules = ctx.policy.tier(member.tier)
    balance = member.balance
    month = member.last_refreshed_month
    while month < up_to_month:
        month = next_month(month)
        total = balance + rules.monthly_allotment
        forfeited = max(0, total - rules.cap)
        balance = total - forfeited
        yield CreditsRefreshed(
            **header(ctx, cmd),
            member_id=member.member_id,
            month=month,
            tier=member.tier,
            granted=rules.monthly_allotment,
            forfeited=forfeited,
        )


def balance_after(member: Member, refreshes: Sequence[AnyEvent]) -> int:
    """The member's balance once ``refreshes`` (decided, not yet recorded) are applied."""
    balance = member.balance
    for event in refreshes:
        if isinstance(event, CreditsRefreshed):
            balance += event.granted - event.forfeited
    return balance
