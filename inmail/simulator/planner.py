"""What happens on each simulated day, planned before any of the day's commands is sent.

A day runs in five phases (due work, member, social, send, respond) so that no command
reads what another command of the same phase writes. The first is one ``RunDue``: the
service performs what became due since the day before (scheduled sends at their hour,
automated follow-ups, assessments) before anything else happens that day. Every random
draw of a day happens while planning it, so the same seed plans the same commands however
the replies interleave.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from contracts.commands import (
    AcknowledgeInMail,
    BlockMember,
    ChangeTier,
    Command,
    ConnectMembers,
    DeclineInMail,
    MarkInMailRead,
    RecordReply,
    RefreshCredits,
    RegisterMember,
    RunDue,
    UpdatePreferences,
)
from contracts.types import Tier, month_of, month_start, next_month
from inmail.simulator.corpus import (
    BLOCKS_PER_MONTH,
    CONNECTIONS_PER_MONTH,
    DAYS_PER_MONTH,
    DECLINE_REASONS,
    FLOOR_SENDER_CONNECTIONS,
    INITIAL_CONNECTIONS,
    PREFERENCE_CHANGES_PER_MONTH,
    REPLIES,
    TIER_CHANGES_PER_MONTH,
    TIERS,
    draw_templates,
)
from inmail.simulator.draws import poisson
from inmail.simulator.model import ACTION_ORDER, SimMember, Step, World, populate
from inmail.simulator.options import SimulationOptions
from inmail.simulator.sends import SendPlanner


class Planner:
    """Plans a run's days from its options and seed; owns the run's only random source."""

    def __init__(self, options: SimulationOptions) -> None:
        assert options.start is not None and options.id_prefix is not None, "validated options"
        self.prefix = options.id_prefix
        self.start = month_start(options.start)
        end_month = options.start
        for _ in range(options.months):
            end_month = next_month(end_month)
        self.days = (month_start(end_month) - self.start).days
        self.rng = random.Random(options.seed)
        # Templates first, then members: the order of draws is part of what a seed means.
        templates = draw_templates(self.rng, self.prefix)
        self.world = World(populate(self.rng, options.members, self.days, self.prefix), self.days)
        self.command_serial = 0
        self.joined_today: list[int] = []
        self.sends = SendPlanner(self.world, self.rng, templates, options.activity, self.next_command_id)

    def plan_day(self, day: int) -> list[list[Step]]:
        """The day's five phases, in the order they run; all of them planned now."""
        now = self.start + timedelta(days=day, hours=12)
        return [
            self._plan_due(day, now),
            self._plan_members(day, now),
            self._plan_social(day, now),
            self.sends.plan(day, now),
            self._plan_responses(day, now),
        ]

    def next_command_id(self) -> str:
        """A new command id: the run's prefix and a serial."""
        self.command_serial += 1
        return f"{self.prefix}-{self.command_serial}"

    def _plan_due(self, day: int, now: datetime) -> list[Step]:
        """RunDue up to now; the model decides which scheduled sends it delivers, as the service does."""
        delivered = tuple(self.world.deliver(day))
        return [Step(-1, RunDue(command_id=self.next_command_id(), until=now), delivers=delivered)]

    def _plan_members(self, day: int, now: datetime) -> list[Step]:
        """Registrations, the month's refresh (the simulator plays the scheduler), tier and preferences."""
        steps: list[Step] = []
        established = len(self.world.registered)
        for index in self.world.joining.pop(day, []):
            member = self.world.members[index]
            steps.append(
                Step(
                    index,
                    RegisterMember(
                        command_id=self.next_command_id(),
                        occurred_at=now,
                        member_id=member.member_id,
                        display_name=f"{member.first_name} {member.last_name}",
                        email=f"{member.member_id}@example.com",
                        tier=member.tier,
                        open_profile=member.open_profile,
                        inmail_opt_out=member.opted_out,
                    ),
                )
            )
            self.world.join(member)
        self.joined_today = [step.chain for step in steps]
        joined_today = set(self.joined_today)
        if day > 0 and now.day == 1:
            month = month_of(now)
            for member in self.world.members:
                if member.registered and member.index not in joined_today:
                    steps.append(
                        Step(
                            member.index,
                            RefreshCredits(
                                command_id=self.next_command_id(),
                                occurred_at=now,
                                member_id=member.member_id,
                                month=month,
                            ),
                        )
                    )
        if not established:
            return steps
        # Tier and preference changes do not scale with --activity: it is about sending.
        for _ in range(poisson(self.rng, established * TIER_CHANGES_PER_MONTH / DAYS_PER_MONTH)):
            member = self.world.members[self.world.registered.pick(self.rng)]
            # The floor sender stays a recruiter: its periods are assessed only on that tier.
            if member.index not in joined_today and not member.floor_sender:
                steps.append(self._change_tier(member, now))
        for _ in range(poisson(self.rng, established * PREFERENCE_CHANGES_PER_MONTH / DAYS_PER_MONTH)):
            member = self.world.members[self.world.registered.pick(self.rng)]
            if member.index not in joined_today:
                steps.append(self._change_preferences(member, now))
        return steps

    def _change_tier(self, member: SimMember, now: datetime) -> Step:
        if member.tier == "free":
            choices: tuple[Tier, ...] = (
                "premium_career",
                "premium_business",
                "sales_navigator",
                "recruiter_lite",
            )
            tier = self.rng.choices(choices, (5, 3, 1, 1))[0]
        else:
            others = tuple(tier for tier in TIERS if tier not in ("free", member.tier))
            tier = "free" if self.rng.random() < 0.4 else self.rng.choice(others)
        self.world.change_tier(member, tier)
        return Step(
            member.index,
            ChangeTier(
                command_id=self.next_command_id(), occurred_at=now, member_id=member.member_id, tier=tier
            ),
        )

    def _change_preferences(self, member: SimMember, now: datetime) -> Step:
        command_id = self.next_command_id()
        if member.tier != "free" and self.rng.random() < 0.8:
            self.world.toggle_open_profile(member)
            command = UpdatePreferences(
                command_id=command_id,
                occurred_at=now,
                member_id=member.member_id,
                open_profile=member.open_profile,
            )
        else:
            member.opted_out = not member.opted_out
            command = UpdatePreferences(
                command_id=command_id,
                occurred_at=now,
                member_id=member.member_id,
                inmail_opt_out=member.opted_out,
            )
        return Step(member.index, command)

    def _plan_social(self, day: int, now: datetime) -> list[Step]:
        """Blocks (after a decline, and a few out of the blue), then new connections."""
        steps: list[Step] = []
        pairs = [(blocker, blocked) for _, blocker, blocked in sorted(self.world.blocks.pop(day, []))]
        population = len(self.world.registered)
        if population >= 2:
            for _ in range(poisson(self.rng, population * BLOCKS_PER_MONTH / DAYS_PER_MONTH)):
                pairs.append((self.world.registered.pick(self.rng), self.world.registered.pick(self.rng)))
        for blocker, blocked in pairs:
            if blocker == blocked or blocked in self.world.members[blocker].blocked:
                continue
            self.world.members[blocker].blocked.add(blocked)
            self.world.members[blocked].blocked.add(blocker)
            steps.append(
                Step(
                    blocker,
                    BlockMember(
                        command_id=self.next_command_id(),
                        occurred_at=now,
                        member_id=self.world.members[blocker].member_id,
                        blocked_member_id=self.world.members[blocked].member_id,
                    ),
                )
            )
        if population < 2:
            return steps
        askers = [index for index in self.joined_today for _ in range(poisson(self.rng, INITIAL_CONNECTIONS))]
        for _ in range(poisson(self.rng, population * CONNECTIONS_PER_MONTH / DAYS_PER_MONTH)):
            askers.append(self.world.registered.pick(self.rng))
        for asker in askers:
            other = self.world.registered.pick(self.rng)
            member = self.world.members[asker]
            # Never a pair already connected (either way) or blocked: the outcome would then
            # depend on which of two concurrent commands the service saw first.
            if other == asker or other in member.connected or other in member.blocked:
                continue
            peer = self.world.members[other]
            steps.append(self._connect(member, peer, now))
        return steps + self._floor_connections(now)

    def _floor_connections(self, now: datetime) -> list[Step]:
        """The floor sender, on the day it joins, connects with many members: its InMails are free."""
        sender = next((m for m in self.world.members if m.floor_sender), None)
        if sender is None or sender.index not in self.joined_today:
            return []
        others = [
            m for m in self.world.members
            if m.registered and m.index != sender.index and m.index not in sender.connected
            and m.index not in sender.blocked
        ]  # fmt: skip
        return [self._connect(sender, other, now) for other in others[:FLOOR_SENDER_CONNECTIONS]]

    def _connect(self, member: SimMember, peer: SimMember, now: datetime) -> Step:
        """A new connection between two members not connected yet, in the model and as a command."""
        member.connected.add(peer.index)
        member.connections.append(peer.index)
        peer.connected.add(member.index)
        peer.connections.append(member.index)
        return Step(
            member.index,
            ConnectMembers(
                command_id=self.next_command_id(),
                occurred_at=now,
                member_id=member.member_id,
                other_member_id=peer.member_id,
            ),
        )

    def _plan_responses(self, day: int, now: datetime) -> list[Step]:
        """Reads, acknowledgements and responses due today.

        They write the senders' aggregates, yet chain per InMail: their outcomes do not
        depend on one another (a refund is +1 whatever the order, and the month's
        refresh came earlier, in the member phase), and a busy recruiter's responses
        would otherwise queue behind each other.
        """
        steps: list[Step] = []
        due = sorted(self.world.actions.pop(day, []), key=lambda item: (item[0], ACTION_ORDER[item[1]]))
        for serial, action, inmail in due:
            assert inmail.inmail_id is not None
            recipient = self.world.members[inmail.recipient].member_id
            command_id = self.next_command_id()
            command: Command
            if action == "read":
                command = MarkInMailRead(
                    command_id=command_id, occurred_at=now, inmail_id=inmail.inmail_id, member_id=recipient
                )
            elif action == "acknowledge":
                command = AcknowledgeInMail(
                    command_id=command_id, occurred_at=now, inmail_id=inmail.inmail_id, member_id=recipient
                )
            elif inmail.fate.replies:
                command = RecordReply(
                    command_id=command_id,
                    occurred_at=now,
                    inmail_id=inmail.inmail_id,
                    member_id=recipient,
                    body=REPLIES[serial % len(REPLIES)],
                )
            else:
                command = DeclineInMail(
                    command_id=command_id,
                    occurred_at=now,
                    inmail_id=inmail.inmail_id,
                    member_id=recipient,
                    reason=DECLINE_REASONS[serial % len(DECLINE_REASONS)],
                )
            steps.append(
                Step(
                    inmail.serial,
                    command,
                    responds_to=inmail if action == "respond" else None,
                    declines=action == "respond" and not inmail.fate.replies,
                )
            )
        return steps
