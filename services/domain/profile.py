"""The member's profile: registration, tier, preferences, connections and blocks."""

from __future__ import annotations

from contracts.commands import (
    BlockMember,
    ChangeTier,
    ConnectMembers,
    EraseMember,
    RegisterMember,
    UpdatePreferences,
)
from contracts.events import (
    AnyEvent,
    CreditsForfeited,
    MemberBlocked,
    MemberErased,
    MemberRegistered,
    MembersConnected,
    PreferencesUpdated,
    TierChanged,
)
from contracts.personal import is_sealed
from contracts.types import month_of
from services.domain import errors
from services.domain.credits import balance_after, due_refreshes
from services.domain.rules import (
    Context,
    Decision,
    check_not_blocked,
    check_time,
    existing,
    header,
    repeat,
)
from services.domain.state import Member


def register_member(state: Member | None, cmd: RegisterMember, ctx: Context) -> Decision:
    """RegisterMember: a new member with the first month's allotment."""
    if state is not None:
        if state.erased_seq is not None:
            raise errors.MemberErased(f"member {cmd.member_id} was erased; the id is not given again")
        if (done := repeat(state, cmd, ctx)) is not None:
            return done
        raise errors.MemberExists(f"member {cmd.member_id} already exists")
    rules = ctx.policy.tier(cmd.tier)
    if cmd.open_profile and not rules.paid:
        raise errors.TierNotAllowed("Open Profile needs a paid tier")
    return Decision(
        [
            MemberRegistered(
                **header(ctx, cmd),
                member_id=cmd.member_id,
                display_name=cmd.display_name,
                tier=cmd.tier,
                open_profile=cmd.open_profile,
                inmail_opt_out=cmd.inmail_opt_out,
                month=month_of(ctx.now),
                granted=rules.monthly_allotment,
            )
        ]
    )


def change_tier(state: Member | None, cmd: ChangeTier, ctx: Context) -> Decision:
    """ChangeTier: the old balance is forfeited and the new tier's allotment granted."""
    member = existing(state, cmd.member_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    check_time(member, ctx)
    if cmd.tier == member.tier:
        return Decision.already(member.tier_seq)
    events: list[AnyEvent] = list(due_refreshes(member, month_of(ctx.now), cmd, ctx))
    balance = balance_after(member, events)
    if balance > 0:
        events.append(
            CreditsForfeited(
                **header(ctx, cmd), member_id=member.member_id, amount=balance, reason="tier_change"
            )
        )
    rules = ctx.policy.tier(cmd.tier)
    events.append(
        TierChanged(
            **header(ctx, cmd),
            member_id=member.member_id,
            old_tier=member.tier,
            tier=cmd.tier,
            month=month_of(ctx.now),
            granted=rules.monthly_allotment,
        )
    )
    if member.open_profile and not rules.paid:
        # Open Profile needs a paid tier: a downgrade to one that is not turns it off.
        events.append(
            PreferencesUpdated(
                **header(ctx, cmd),
                member_id=member.member_id,
                open_profile=False,
                inmail_opt_out=member.inmail_opt_out,
                email_notifications=member.email_notifications,
            )
        )
    return Decision(events)


def update_preferences(state: Member | None, cmd: UpdatePreferences, ctx: Context) -> Decision:
    """UpdatePreferences: Open Profile on paid tiers only; InMail opt-out and email alerts for anyone."""
    member = existing(state, cmd.member_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    check_time(member, ctx)
    open_profile = member.open_profile if cmd.open_profile is None else cmd.open_profile
    opt_out = member.inmail_opt_out if cmd.inmail_opt_out is None else cmd.inmail_opt_out
    emails = member.email_notifications if cmd.email_notifications is None else cmd.email_notifications
    if open_profile and not ctx.policy.tier(member.tier).paid:
        raise errors.TierNotAllowed("Open Profile needs a paid tier")
    if (open_profile, opt_out, emails) == (
        member.open_profile,
        member.inmail_opt_out,
        member.email_notifications,
    ):
        return Decision.already(member.preferences_seq)
    return Decision(
        [
            PreferencesUpdated(
                **header(ctx, cmd),
                member_id=member.member_id,
                open_profile=open_profile,
                inmail_opt_out=opt_out,
                email_notifications=emails,
            )
        ]
    )


def connect_members(
    state: Member | None, other: Member | None, cmd: ConnectMembers, ctx: Context
) -> Decision:
    """ConnectMembers: a 1st-degree connection both ways, recorded on ``member_id``."""
    member = existing(state, cmd.member_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    peer = existing(other, cmd.other_member_id, at=ctx.now)
    check_time(member, ctx)
    check_not_blocked(member, peer)
    already = member.connections.get(peer.member_id) or peer.connections.get(member.member_id)
    if already:
        return Decision.already(already)
    return Decision(
        [MembersConnected(**header(ctx, cmd), member_id=member.member_id, other_member_id=peer.member_id)]
    )


def block_member(state: Member | None, other: Member | None, cmd: BlockMember, ctx: Context) -> Decision:
    """BlockMember: no InMail between the two, either way, from now on."""
    member = existing(state, cmd.member_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    blocked = existing(other, cmd.blocked_member_id, at=ctx.now)
    check_time(member, ctx)
    if blocked.member_id in member.blocked:
        return Decision.already(member.blocked[blocked.member_id])
    return Decision(
        [MemberBlocked(**header(ctx, cmd), member_id=member.member_id, blocked_member_id=blocked.member_id)]
    )


def erase_member(state: Member | None, cmd: EraseMember, ctx: Context) -> Decision:
    """EraseMember: the member is forgotten; refused when their data sits in clear-text events.

    Destroying a key forgets only what it sealed: a member registered in a stream written
    before encryption existed has their name (and maybe texts) in the clear, and erasing
    them would only pretend.
    """
    member = existing(state, cmd.member_id)
    if (done := repeat(member, cmd, ctx)) is not None:
        return done
    if member.erased_seq is not None:
        raise errors.MemberErased(f"member {cmd.member_id} was already erased")
    if not is_sealed(member.display_name):
        raise errors.PersonalDataInClear(
            f"member {cmd.member_id} was registered (seq {member.registered_seq}) in events written "
            "before encryption existed: their name and texts there are in the clear, and events are "
            "never rewritten, so destroying a key would not forget them; nothing was done"
        )
    check_time(member, ctx)
    return Decision([MemberErased(**header(ctx, cmd), member_id=cmd.member_id)])
