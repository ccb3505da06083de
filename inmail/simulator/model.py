"""The simulated world's state: members, the pools they are picked from, InMails and their fates,
what is due on which day, and the planned commands (steps) that change it.

It holds what the simulator asked for, not what the service said; only the ids the service
chose come back from replies.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from contracts.commands import Command
from contracts.types import InMailKind, Tier
from inmail.simulator.corpus import (
    FIRST_NAMES,
    INTENSITIES,
    LAST_NAMES,
    LATE_JOINERS,
    OPEN_PROFILE_RATE,
    OPTED_OUT_SHARE,
    PROFILES,
    TIERS,
)

Segment = Literal["generic", "personalised", "open_profile", "follow_up"]
SEGMENTS: Final[tuple[Segment, ...]] = ("generic", "personalised", "open_profile", "follow_up")


@dataclass(slots=True)
class SimMember:
    """A member as the simulator plans them (what it asked for, not what the service said)."""

    index: int
    member_id: str
    first_name: str
    last_name: str
    tier: Tier
    open_profile: bool
    opted_out: bool
    intensity: float
    open_profile_rate: float
    joined_day: int
    floor_sender: bool = False
    """The run's one sender meant to fall under the response-rate floor."""
    registered: bool = False
    connections: list[int] = field(default_factory=list)
    connected: set[int] = field(default_factory=set)
    blocked: set[int] = field(default_factory=set)
    """Members this one blocked or was blocked by."""


class Pool:
    """A set of member indices with O(1) add, remove and a uniform random pick in a stable order."""

    def __init__(self) -> None:
        self._items: list[int] = []
        self._where: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item: int) -> bool:
        return item in self._where

    def add(self, item: int) -> None:
        """Add an item (no effect when present)."""
        if item not in self._where:
            self._where[item] = len(self._items)
            self._items.append(item)

    def remove(self, item: int) -> None:
        """Remove an item (no effect when absent)."""
        where = self._where.pop(item, None)
        if where is None:
            return
        last = self._items.pop()
        if last != item:
            self._items[where] = last
            self._where[last] = where

    def pick(self, rng: random.Random) -> int:
        """A uniformly random item; the pool must not be empty."""
        return self._items[rng.randrange(len(self._items))]


@dataclass(slots=True)
class Fate:
    """Everything that will happen to an InMail, drawn when it is planned."""

    read_after: int | None
    acknowledged: bool
    respond_after: int | None
    replies: bool
    blocks_after_decline: bool
    follow_up_after: int | None


@dataclass(slots=True, eq=False)
class SimInMail:
    """One planned InMail; ``inmail_id`` is the service's, known once the send succeeded."""

    serial: int
    sender: int
    recipient: int
    day: int
    segment: Segment
    rate: float
    kind: InMailKind
    template_id: str | None
    subject: str
    fate: Fate
    """Drawn from ``day``: for a scheduled InMail, the day it is due for delivery."""
    original: SimInMail | None = None
    inmail_id: str | None = None


Action = Literal["read", "acknowledge", "respond"]
ACTION_ORDER: Final[Mapping[Action, int]] = {"read": 0, "acknowledge": 1, "respond": 2}


@dataclass(slots=True)
class Step:
    """One command of a tick, its place in an ordered chain, and what its success means."""

    chain: int
    """Commands of one chain run in planned order: those writing one member's aggregate, or,
    in the respond phase, those about one InMail."""
    command: Command
    inmails: tuple[SimInMail, ...] = ()
    """Sends: the InMails it creates, in the order of the reply's ids."""
    delivers: tuple[SimInMail, ...] = ()
    """RunDue: the scheduled InMails the model expects it to deliver."""
    responds_to: SimInMail | None = None
    declines: bool = False


class World:
    """The members of a run, who can be picked for what, and what is due on which day."""

    def __init__(self, members: list[SimMember], days: int) -> None:
        self.members = members
        self.days = days
        self.registered = Pool()
        self.by_tier: dict[Tier, Pool] = {tier: Pool() for tier in TIERS}
        self.open_profiles = Pool()
        self.joining: dict[int, list[int]] = {}
        for member in members:
            self.joining.setdefault(member.joined_day, []).append(member.index)
        self.actions: dict[int, list[tuple[int, Action, SimInMail]]] = {}
        """By day: (InMail serial, action, InMail); the serial orders a day's actions."""
        self.follow_ups: dict[int, list[SimInMail]] = {}
        """By day: the originals to follow up."""
        self.blocks: dict[int, list[tuple[int, int, int]]] = {}
        """By day: (InMail serial, blocker, blocked) for blocks after a decline."""
        self.scheduled: dict[int, list[SimInMail]] = {}
        """By day: scheduled InMails due for delivery that day."""

    def join(self, member: SimMember) -> None:
        """A member registers: from now on they can be picked."""
        member.registered = True
        self.registered.add(member.index)
        self.by_tier[member.tier].add(member.index)
        if member.open_profile:
            self.open_profiles.add(member.index)

    def change_tier(self, member: SimMember, tier: Tier) -> None:
        """A member moves to another tier."""
        self.by_tier[member.tier].remove(member.index)
        member.tier = tier
        self.by_tier[tier].add(member.index)
        if tier == "free" and member.open_profile:
            # The service turns Open Profile off on a downgrade to a tier that cannot have it.
            member.open_profile = False
            self.open_profiles.remove(member.index)

    def toggle_open_profile(self, member: SimMember) -> None:
        """A member turns Open Profile on or off."""
        member.open_profile = not member.open_profile
        if member.open_profile:
            self.open_profiles.add(member.index)
        else:
            self.open_profiles.remove(member.index)

    def sent(self, inmail: SimInMail, inmail_id: str) -> None:
        """The service accepted an InMail: note its id and schedule what its fate holds."""
        inmail.inmail_id = inmail_id
        fate = inmail.fate
        if fate.read_after is not None:
            self._schedule(inmail.day + fate.read_after, "read", inmail)
            if fate.acknowledged:
                self._schedule(inmail.day + fate.read_after, "acknowledge", inmail)
        if fate.respond_after is not None:
            self._schedule(inmail.day + fate.respond_after, "respond", inmail)
        if fate.follow_up_after is not None and inmail.day + fate.follow_up_after < self.days:
            self.follow_ups.setdefault(inmail.day + fate.follow_up_after, []).append(inmail)

    def schedule(self, inmail: SimInMail, inmail_id: str) -> None:
        """The service accepted a scheduled InMail: it is delivered (or not) on its day."""
        inmail.inmail_id = inmail_id
        self.scheduled.setdefault(inmail.day, []).append(inmail)

    def deliver(self, day: int) -> list[SimInMail]:
        """The day's scheduled InMails the service delivers; their fates start now.

        As the service decides: a block either way, or an opt-out unless the two are
        connected, since scheduling cancels one (and its responses never come).
        """
        delivered = []
        for inmail in sorted(self.scheduled.pop(day, []), key=lambda item: item.serial):
            sender, recipient = self.members[inmail.sender], self.members[inmail.recipient]
            blocked = recipient.index in sender.blocked
            if blocked or (recipient.opted_out and recipient.index not in sender.connected):
                continue
            assert inmail.inmail_id is not None
            self.sent(inmail, inmail.inmail_id)
            delivered.append(inmail)
        return delivered

    def responded(self, inmail: SimInMail, *, declined: bool) -> None:
        """The service recorded a response: schedule the block its fate may hold after a decline."""
        if declined and inmail.fate.blocks_after_decline:
            day = inmail.day + (inmail.fate.respond_after or 0) + 1
            if day < self.days:
                self.blocks.setdefault(day, []).append((inmail.serial, inmail.recipient, inmail.sender))

    def _schedule(self, day: int, action: Action, inmail: SimInMail) -> None:
        if day < self.days:
            self.actions.setdefault(day, []).append((inmail.serial, action, inmail))


def populate(rng: random.Random, count: int, days: int, prefix: str) -> list[SimMember]:
    """The members of a run, their tiers in the profiles' shares and their traits drawn."""
    tiers = _tier_quotas(count)
    rng.shuffle(tiers)
    levels = [level for level, _ in INTENSITIES]
    weights = [share for _, share in INTENSITIES]
    floor_sender = tiers.index("recruiter") if "recruiter" in tiers else None
    members = []
    for index, tier in enumerate(tiers):
        profile = PROFILES[tier]
        joined = 0 if rng.random() >= LATE_JOINERS else rng.randrange(days)
        members.append(
            SimMember(
                index=index,
                member_id=f"{prefix}-m{index}",
                first_name=rng.choice(FIRST_NAMES),
                last_name=rng.choice(LAST_NAMES),
                tier=tier,
                open_profile=rng.random() < profile.open_profile,
                opted_out=rng.random() < OPTED_OUT_SHARE,
                intensity=rng.choices(levels, weights)[0],
                open_profile_rate=rng.uniform(*OPEN_PROFILE_RATE),
                joined_day=joined,
                floor_sender=index == floor_sender,
            )
        )
    return members


def _tier_quotas(count: int) -> list[Tier]:
    """Tiers in the profiles' shares; every tier present once there are enough members."""
    quotas = {tier: int(profile.share * count) for tier, profile in PROFILES.items()}
    if count >= len(TIERS) * 2:
        for tier in TIERS:
            quotas[tier] = max(quotas[tier], 1)
    quotas["free"] += count - sum(quotas.values())
    return [tier for tier, quota in quotas.items() for _ in range(quota)]
