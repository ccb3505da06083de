"""A world of members whose commands are decided by the pure domain and appended to a real stream.

Tests build event histories the way the service would: ``World`` keeps every
member's state, decides each command with ``services.domain.decider.decide`` and
appends the events to ``inmail.evt.member.<id>`` through the event store, at the
version the decision was made on. ``populate`` then plays a few months of
realistic traffic: sends (single and bulk, charged and free), reads,
acknowledgements, replies, declines (some followed by a reply), late replies,
monthly refreshes with forfeits, and tier changes.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from contracts import subjects
from contracts.commands import (
    AcknowledgeInMail,
    AnyCommand,
    BlockMember,
    ChangeTier,
    ConnectMembers,
    DeclineInMail,
    MarkInMailRead,
    RecordReply,
    RefreshCredits,
    RegisterMember,
    SendBulkInMail,
    SendInMail,
    UpdatePreferences,
)
from contracts.events import AnyEvent, InMailSent, encode_event
from contracts.types import InMailKind, Tier, month_of
from eventstore import JetStreamEventStore, NewMessage
from services.domain.decider import decide
from services.domain.errors import DomainError
from services.domain.rules import Context
from services.domain.state import Member, evolve
from services.routing import reads_of, target_of

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)

KINDS: tuple[InMailKind, ...] = (
    "recruiter_outreach",
    "talent_pipeline",
    "sales_prospecting",
    "employer_branding",
    "event_invitation",
)


class World:
    """Members, their states and versions, and every event recorded so far (with its seq)."""

    def __init__(self, store: JetStreamEventStore, *, prefix: str = "w") -> None:
        self.store = store
        self.prefix = prefix
        self.states: dict[str, Member | None] = {}
        self.versions: dict[str, int] = {}
        self.senders: dict[str, str] = {}
        self.recorded: list[tuple[int, AnyEvent]] = []
        self.clock = T0
        self._ids = (f"{prefix}e{n}" for n in itertools.count(1))
        self._commands = itertools.count(1)

    @property
    def last_seq(self) -> int:
        return self.recorded[-1][0] if self.recorded else 0

    @property
    def members(self) -> list[str]:
        return [m for m, state in self.states.items() if state is not None]

    def state(self, member_id: str) -> Member:
        state = self.states[member_id]
        assert state is not None
        return state

    def command_id(self) -> str:
        return f"{self.prefix}c{next(self._commands)}"

    async def do(self, cmd: AnyCommand, at: datetime | None = None) -> list[AnyEvent]:
        """Decide and record a command; raises the domain's error when it is refused."""
        now = at or self.clock
        self.clock = max(self.clock, now)
        target = target_of(cmd)
        if target is None:
            assert isinstance(cmd, MarkInMailRead | AcknowledgeInMail | RecordReply | DeclineInMail)
            target = self.senders[cmd.inmail_id]
        others = {m: self.states.get(m) for m in reads_of(cmd)}
        context = Context(now=now, ids=self._ids)
        decision = decide(cmd, self.states.get(target), others, context)
        if not decision.events:
            return []
        appended = await self.store.append(
            subjects.member_events(target),
            [NewMessage(e.event_id, encode_event(e)) for e in decision.events],
            self.versions.get(target, 0),
        )
        for event, seq in zip(decision.events, appended.seqs, strict=True):
            self.states[target] = evolve(self.states.get(target), event, seq)
            self.recorded.append((seq, event))
            if isinstance(event, InMailSent):
                self.senders[event.inmail_id] = target
        self.versions[target] = appended.last_seq
        return decision.events

    async def append_raw(self, member_id: str, body: Mapping[str, object]) -> int:
        """A message the command side would never write, straight onto a member's subject; its seq."""
        appended = await self.store.append(
            subjects.member_events(member_id),
            [NewMessage(f"{self.prefix}raw{next(self._commands)}", msgspec.json.encode(body))],
            self.versions.get(member_id, 0),
        )
        self.versions[member_id] = appended.last_seq
        return appended.last_seq

    async def attempt(self, cmd: AnyCommand, at: datetime | None = None) -> list[AnyEvent] | None:
        """``do``, or None when the domain refuses the command."""
        try:
            return await self.do(cmd, at)
        except DomainError:
            return None

    # One helper per command, for readable tests ------------------------------------

    async def register(
        self, member_id: str, tier: Tier = "premium_career", *, at: datetime | None = None, **fields: Any
    ) -> None:
        await self.do(
            RegisterMember(
                command_id=self.command_id(),
                member_id=member_id,
                display_name=fields.pop("display_name", f"{member_id.title()} Example"),
                email=f"{member_id}@example.com",
                tier=tier,
                **fields,
            ),
            at,
        )

    async def send(
        self, sender: str, recipient: str, *, at: datetime | None = None, **fields: Any
    ) -> InMailSent:
        fields = {"subject": "A role for you", "body": f"Hello {recipient}"} | fields
        events = await self.do(
            SendInMail(command_id=self.command_id(), sender_id=sender, recipient_id=recipient, **fields),
            at,
        )
        [sent] = [e for e in events if isinstance(e, InMailSent)]
        return sent

    def recipient_of(self, inmail_id: str) -> str:
        return self.state(self.senders[inmail_id]).inmails[inmail_id].recipient_id

    async def read(self, inmail_id: str, *, at: datetime | None = None) -> list[AnyEvent]:
        return await self.do(
            MarkInMailRead(
                command_id=self.command_id(), inmail_id=inmail_id, member_id=self.recipient_of(inmail_id)
            ),
            at,
        )

    async def acknowledge(self, inmail_id: str, *, at: datetime | None = None) -> list[AnyEvent]:
        return await self.do(
            AcknowledgeInMail(
                command_id=self.command_id(), inmail_id=inmail_id, member_id=self.recipient_of(inmail_id)
            ),
            at,
        )

    async def reply(self, inmail_id: str, *, at: datetime | None = None) -> list[AnyEvent]:
        return await self.do(
            RecordReply(
                command_id=self.command_id(),
                inmail_id=inmail_id,
                member_id=self.recipient_of(inmail_id),
                body="Tell me more",
            ),
            at,
        )

    async def decline(self, inmail_id: str, *, at: datetime | None = None) -> list[AnyEvent]:
        return await self.do(
            DeclineInMail(
                command_id=self.command_id(), inmail_id=inmail_id, member_id=self.recipient_of(inmail_id)
            ),
            at,
        )

    async def refresh(self, member_id: str, month: str, *, at: datetime | None = None) -> list[AnyEvent]:
        return await self.do(
            RefreshCredits(command_id=self.command_id(), member_id=member_id, month=month), at
        )

    async def change_tier(self, member_id: str, tier: Tier, *, at: datetime | None = None) -> list[AnyEvent]:
        return await self.do(ChangeTier(command_id=self.command_id(), member_id=member_id, tier=tier), at)

    async def connect(self, a: str, b: str, *, at: datetime | None = None) -> list[AnyEvent]:
        return await self.do(ConnectMembers(command_id=self.command_id(), member_id=a, other_member_id=b), at)


TIERS: tuple[Tier, ...] = (
    "free",
    "premium_career",
    "premium_business",
    "sales_navigator",
    "recruiter_lite",
    "recruiter",
)


async def populate(world: World, *, members: int = 12, steps: int = 300, seed: int = 1) -> None:
    """A few months of traffic among ``members`` members; refused commands are simply skipped."""
    rng = random.Random(seed)
    ids = [f"{world.prefix}m{n:02d}" for n in range(members)]
    for n, member_id in enumerate(ids):
        tier = TIERS[n % len(TIERS)]
        await world.register(
            member_id, tier, open_profile=tier != "free" and n % 5 == 3, inmail_opt_out=n % 11 == 10
        )
    for _ in range(members // 3):
        a, b = rng.sample(ids, 2)
        await world.attempt(ConnectMembers(command_id=world.command_id(), member_id=a, other_member_id=b))
    a, b = rng.sample(ids, 2)
    await world.attempt(BlockMember(command_id=world.command_id(), member_id=a, blocked_member_id=b))
    templates = ["t1", "t2", "t3", None]
    for _ in range(steps):
        world.clock += timedelta(hours=rng.randint(1, 20))
        roll = rng.random()
        inmails = list(world.senders)
        if roll < 0.40 or not inmails:
            sender, recipient = rng.sample(ids, 2)
            follow_up: str | None = None
            mine = [i for i in inmails if world.senders[i] == sender and world.recipient_of(i) == recipient]
            if mine and rng.random() < 0.3:
                follow_up = rng.choice(mine)
            await world.attempt(
                SendInMail(
                    command_id=world.command_id(),
                    sender_id=sender,
                    recipient_id=recipient,
                    subject=f"Subject {rng.randint(1, 99)}",
                    body="Would you like to talk?",
                    kind=rng.choice(KINDS),
                    template_id=rng.choice(templates),
                    follow_up_of=follow_up,
                )
            )
        elif roll < 0.45:
            sender = rng.choice(ids)
            recipients = rng.sample([m for m in ids if m != sender], 3)
            await world.attempt(
                SendBulkInMail(
                    command_id=world.command_id(),
                    sender_id=sender,
                    recipient_ids=recipients,
                    subject="Bulk",
                    body="We are hiring",
                    kind=rng.choice(KINDS),
                    template_id=rng.choice(templates),
                )
            )
        elif roll < 0.60:
            await _respond(world, MarkInMailRead, rng.choice(inmails))
        elif roll < 0.65:
            await _respond(world, AcknowledgeInMail, rng.choice(inmails))
        elif roll < 0.78:
            await _respond(world, RecordReply, rng.choice(inmails))
        elif roll < 0.88:
            await _respond(world, DeclineInMail, rng.choice(inmails))
        elif roll < 0.95:
            await world.attempt(
                RefreshCredits(
                    command_id=world.command_id(), member_id=rng.choice(ids), month=month_of(world.clock)
                )
            )
        elif roll < 0.98:
            await world.attempt(
                ChangeTier(command_id=world.command_id(), member_id=rng.choice(ids), tier=rng.choice(TIERS))
            )
        else:
            await world.attempt(
                UpdatePreferences(
                    command_id=world.command_id(), member_id=rng.choice(ids), open_profile=rng.random() < 0.5
                )
            )


async def _respond(world: World, kind: type[AnyCommand], inmail_id: str) -> None:
    fields: dict[str, Any] = {
        "command_id": world.command_id(),
        "inmail_id": inmail_id,
        "member_id": world.recipient_of(inmail_id),
    }
    if kind is RecordReply:
        fields["body"] = "Thanks, tell me more"
    await world.attempt(kind(**fields))
