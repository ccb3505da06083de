"""Simulated traffic: members, InMails and their responses, sent to a running service over NATS.

The simulator is a client of the contract and nothing more: it sends commands on
``inmail.cmd.*`` with trusted client time (``occurred_at``) and reads the reply
envelopes. It is the README's demo and the data source of the benchmarks.

Determinism: simulated time advances in ticks of one day, and every command of a
tick carries the same ``occurred_at``. All random draws of a tick happen while
planning it, before any of its commands is sent, and everything an InMail will
ever do (read, acknowledge, respond, be followed up) is drawn when it is
planned; replies only fill in the ids the service chose. A tick runs in four
phases (member, social, send, respond) so that no command reads what another
command of the same phase writes, and commands whose order could change an
outcome (those of one aggregate: credits, refreshes, tier) run one after the
other in planned order. So the same seed gives the same commands and the same
outcomes, however the concurrent replies interleave.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import secrets
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import msgspec
import nats
import nats.errors
from nats.aio.client import Client as NATS
from tqdm import tqdm

from contracts import subjects
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
    SendBulkInMail,
    SendInMail,
    UpdatePreferences,
)
from contracts.policy import CURRENT_POLICY
from contracts.replies import BulkSentData, SentData
from contracts.types import InMailKind, Tier, month_of, month_start, next_month

ID_PREFIX_PATTERN: Final = re.compile(r"^[A-Za-z0-9_-]{1,24}\Z")
MONTH_PATTERN: Final = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])\Z")

SETTLE_DAYS: Final = 28
"""Response rates count InMails sent at least this long before the end: most responses come
within days, so younger InMails would make every rate look low."""

Segment = Literal["generic", "personalised", "open_profile", "follow_up"]
SEGMENTS: Final[tuple[Segment, ...]] = ("generic", "personalised", "open_profile", "follow_up")
SEGMENT_NAMES: Final[Mapping[Segment, str]] = {
    "generic": "generic",
    "personalised": "personalised",
    "open_profile": "Open Profile",
    "follow_up": "follow-up",
}

# The rates the product's users quote; the model draws each template's (and each
# Open Profile member's) rate from these ranges.
GENERIC_RATE: Final = (0.05, 0.10)
PERSONALISED_RATE: Final = (0.15, 0.40)
OPEN_PROFILE_RATE: Final = (0.30, 0.45)
FOLLOW_UP_LIFT: Final = (0.05, 0.10)

EXPECTED_REFUSALS: Final = frozenset(
    {"INSUFFICIENT_CREDITS", "BLOCKED", "RECIPIENT_OPTED_OUT", "TIER_NOT_ALLOWED"}
)
"""Refusals a realistic run meets because members act on what they know; any other code is a
problem (of the simulator or of the service)."""


class SimulationError(Exception):
    """The simulation cannot run (or go on): unreachable NATS, no service, untrusted time."""


# Options and summary ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimulationOptions:
    """What to simulate; the defaults make a demo that finishes in seconds."""

    members: int = 200
    months: int = 3
    start: str | None = None
    """Simulated start month, YYYY-MM; None: a year before now."""
    seed: int = 1
    concurrency: int = 64
    """Requests in flight at most, on one connection."""
    activity: float = 1.0
    """A multiplier on send volume (and so on everything that follows a send)."""
    id_prefix: str | None = None
    """Prefix of every id the run creates; None: a random one, so runs never collide."""
    progress: bool = False
    timeout: float = 10.0
    """Seconds to wait for one reply before retrying the command (same command_id)."""

    def validated(self) -> SimulationOptions:
        """These options with the defaults filled in; ValueError on a bad one."""
        if self.members < 2:
            raise ValueError("members must be at least 2")
        if self.months < 1:
            raise ValueError("months must be at least 1")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not self.activity >= 0:
            raise ValueError("activity must be 0 or more")
        start = self.start or default_start()
        if not MONTH_PATTERN.match(start):
            raise ValueError(f"start must be YYYY-MM: {start}")
        prefix = self.id_prefix or f"sim{secrets.token_hex(3)}"
        if not ID_PREFIX_PATTERN.match(prefix):
            raise ValueError(f"id prefix must be 1-24 of A-Z a-z 0-9 _ -: {prefix}")
        return replace(self, start=start, id_prefix=prefix)


def default_start(now: datetime | None = None) -> str:
    """The month a year before ``now`` (default: the current month), as YYYY-MM."""
    moment = now or datetime.now(UTC)
    return f"{moment.year - 1:04d}-{moment.month:02d}"


@dataclass(frozen=True, slots=True)
class SegmentRate:
    """The achieved response rate of one segment against the rate users quote for it."""

    segment: Segment
    sent: int
    responded: int
    target_low: float
    target_high: float

    @property
    def rate(self) -> float:
        """Responses per InMail sent."""
        return self.responded / self.sent if self.sent else 0.0

    @property
    def judged(self) -> bool:
        """Enough InMails for the rate to mean something."""
        return self.sent >= 30

    @property
    def on_target(self) -> bool:
        """The target range meets the achieved rate's 95% confidence interval."""
        margin = 1.96 * math.sqrt(self.rate * (1 - self.rate) / self.sent) if self.sent else 0.0
        return self.rate - margin <= self.target_high and self.target_low <= self.rate + margin


@dataclass(frozen=True, slots=True)
class TemplateCount:
    """InMails sent with one template, and how many got a response."""

    sent: int
    responded: int


@dataclass(frozen=True, slots=True)
class Summary:
    """What a simulation did: commands, refusals, events written, time, response rates."""

    members: int
    months: int
    start: str
    seed: int
    id_prefix: str
    concurrency: int
    activity: float
    commands: Mapping[str, int]
    """Commands sent, by type (a retry is not a second command)."""
    refusals: Mapping[str, int]
    """Commands refused, by error code."""
    retries: int
    first_seq: int
    """The stream sequence just before the run's first event."""
    last_seq: int
    elapsed: float
    segments: tuple[SegmentRate, ...]
    templates: Mapping[str, TemplateCount]
    """Every InMail sent, by template id (all of them, not only settled ones)."""

    @property
    def commands_total(self) -> int:
        """Every command sent."""
        return sum(self.commands.values())

    @property
    def refusals_total(self) -> int:
        """Every command refused."""
        return sum(self.refusals.values())

    @property
    def events_written(self) -> int:
        """How far the stream moved during the run (includes any other writer's events)."""
        return self.last_seq - self.first_seq

    @property
    def commands_per_second(self) -> float:
        """Throughput over the whole run."""
        return self.commands_total / self.elapsed if self.elapsed > 0 else 0.0

    def segment(self, segment: Segment) -> SegmentRate:
        """The rate of one segment."""
        return next(rate for rate in self.segments if rate.segment == segment)

    def counts(self) -> dict[str, Any]:
        """Everything the seed decides (no ids, no timings): equal for two runs with one seed."""
        return {
            "commands": dict(sorted(self.commands.items())),
            "refusals": dict(sorted(self.refusals.items())),
            "events_written": self.events_written,
            "segments": {rate.segment: (rate.sent, rate.responded) for rate in self.segments},
            "templates": sorted(
                (name.removeprefix(self.id_prefix), count.sent, count.responded)
                for name, count in self.templates.items()
            ),
        }

    def render(self) -> str:
        """The summary as an operator reads it."""
        end = self.start
        for _ in range(self.months - 1):
            end = next_month(end)
        lines = [
            f"Simulated {self.members:,} members over {self.months} month(s), {self.start} to {end} "
            f"(seed {self.seed}, activity {self.activity:g}, ids {self.id_prefix}-*)",
            f"Commands sent: {self.commands_total:,} in {self.elapsed:.1f} s = "
            f"{self.commands_per_second:,.0f} commands/s ({self.concurrency} in flight, "
            f"{self.retries} retries)",
        ]
        lines += [f"  {name:<20}{count:>10,}" for name, count in sorted(self.commands.items())]
        lines.append(f"Refused: {self.refusals_total:,}")
        lines += [
            f"  {code:<20}{count:>10,}{'' if code in EXPECTED_REFUSALS else '  (unexpected)'}"
            for code, count in sorted(self.refusals.items())
        ]
        lines.append(
            f"Events written: {self.events_written:,} (stream seq {self.first_seq:,} -> {self.last_seq:,})"
        )
        lines.append(f"Response rates (InMails sent at least {SETTLE_DAYS} days before the end):")
        lines.append(f"  {'segment':<14}{'InMails':>9}{'responses':>11}{'achieved':>10}  target")
        for rate in self.segments:
            target = f"{rate.target_low:.0%}-{rate.target_high:.0%}"
            if rate.segment == "follow_up":
                baseline = rate.target_low - FOLLOW_UP_LIFT[0]
                target = (
                    f"{rate.target_low:.1%}-{rate.target_high:.1%} "
                    f"(+{FOLLOW_UP_LIFT[0]:.0%}-{FOLLOW_UP_LIFT[1]:.0%} over their originals' {baseline:.1%})"
                )
            verdict = ("ok" if rate.on_target else "OFF TARGET") if rate.judged else "too few to judge"
            lines.append(
                f"  {SEGMENT_NAMES[rate.segment]:<14}{rate.sent:>9,}{rate.responded:>11,}"
                f"{rate.rate:>10.1%}  {target}  {verdict}"
            )
        return "\n".join(lines)


# The model ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TierProfile:
    """How the members of one tier behave."""

    share: float
    """Of all members."""
    singles_per_month: float
    """Single InMails a typical member of the tier sends in a month."""
    bulk_per_month: float = 0.0
    bulk_size: tuple[int, int] = (2, 2)
    kinds: tuple[InMailKind, ...] = ("recruiter_outreach",)
    personalised: float = 0.3
    """Share of sends with a personalised template (the rest are generic)."""
    follow_up: float = 0.0
    """Chance of following up an InMail still unanswered after about a week."""
    open_profile: float = 0.0
    """Chance a member of the tier has Open Profile."""
    seeks_open_profile: float = 0.1
    """Chance a send deliberately targets an Open Profile member."""


PROFILES: Final[Mapping[Tier, TierProfile]] = {
    # Free members send only free InMail: to connections and Open Profile members.
    "free": TierProfile(
        share=0.70,
        singles_per_month=0.4,
        kinds=("recruiter_outreach", "event_invitation"),
        personalised=1.0,
        follow_up=0.1,
        seeks_open_profile=0.3,
    ),
    "premium_career": TierProfile(
        share=0.12,
        singles_per_month=3,
        kinds=("recruiter_outreach", "event_invitation"),
        personalised=0.6,
        follow_up=0.2,
        open_profile=0.25,
    ),
    "premium_business": TierProfile(
        share=0.07,
        singles_per_month=8,
        kinds=("sales_prospecting", "event_invitation", "employer_branding"),
        personalised=0.5,
        follow_up=0.2,
        open_profile=0.3,
    ),
    "sales_navigator": TierProfile(
        share=0.05,
        singles_per_month=45,
        kinds=("sales_prospecting", "sales_prospecting", "event_invitation"),
        personalised=0.3,
        follow_up=0.3,
        open_profile=0.3,
        seeks_open_profile=0.15,
    ),
    "recruiter_lite": TierProfile(
        share=0.035,
        singles_per_month=20,
        bulk_per_month=1.5,
        bulk_size=(2, 10),
        kinds=("recruiter_outreach", "talent_pipeline", "employer_branding"),
        personalised=0.35,
        follow_up=0.4,
        open_profile=0.2,
    ),
    "recruiter": TierProfile(
        share=0.025,
        singles_per_month=90,
        bulk_per_month=4,
        bulk_size=(2, 25),
        kinds=(
            "recruiter_outreach",
            "recruiter_outreach",
            "talent_pipeline",
            "employer_branding",
            "event_invitation",
        ),
        personalised=0.35,
        follow_up=0.4,
        open_profile=0.2,
    ),
}
TIERS: Final[tuple[Tier, ...]] = tuple(PROFILES)

DAYS_PER_MONTH: Final = 30.44
INTENSITIES: Final = ((0.4, 0.4), (1.0, 0.4), (2.5, 0.2))
"""(multiplier, share): a fifth of senders send 2.5 times the usual, and run out of credits."""
MAX_INTENSITY: Final = max(level for level, _ in INTENSITIES)
OPTED_OUT_SHARE: Final = 0.02
LATE_JOINERS: Final = 0.15
"""Share of members who register during the simulation rather than on its first day."""
INITIAL_CONNECTIONS: Final = 1.5
"""Connections each member asks for when joining (the graph's mean degree is twice that)."""
CONNECTIONS_PER_MONTH: Final = 0.1
BLOCKS_PER_MONTH: Final = 0.002
TIER_CHANGES_PER_MONTH: Final = 0.01
PREFERENCE_CHANGES_PER_MONTH: Final = 0.01
READ_SHARE: Final = 0.8
"""Of InMails that get no response (every responded InMail is read first)."""
ACK_SHARE: Final = 0.12
REPLY_SHARE: Final = 0.6
"""Of responses; the rest are declines."""
BLOCK_AFTER_DECLINE: Final = 0.03
TEMPLATES_PER_KIND: Final = 3
"""Generic and as many personalised templates per kind."""


def _response_delay(rng: random.Random) -> int:
    """Days until a response: mostly days, a few after the refund window."""
    draw = rng.random()
    if draw < 0.75:
        return rng.randint(1, 4)
    if draw < 0.90:
        return rng.randint(5, 14)
    if draw < 0.96:
        return rng.randint(15, 45)
    window = CURRENT_POLICY.refund_window.days
    return rng.randint(window + 5, window + 60)


def _read_delay(rng: random.Random) -> int:
    draw = rng.random()
    if draw < 0.7:
        return 1
    if draw < 0.9:
        return rng.randint(2, 3)
    return rng.randint(4, 10)


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw; the normal approximation above 50, where it is indistinguishable."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit = math.exp(-mean)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


# Words for names and messages (written for this simulator).
FIRST_NAMES: Final = (
    "Ada", "Bram", "Chiara", "Dmitri", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas", "Kavya",
    "Lars", "Maya", "Nico", "Olu", "Priya", "Quentin", "Rosa", "Sami", "Tess", "Umar", "Vera",
    "Wei", "Ximena", "Yusuf", "Zoe",
)  # fmt: skip
LAST_NAMES: Final = (
    "Abara", "Berg", "Castillo", "Dube", "Eriksen", "Fontaine", "Gupta", "Haddad", "Ivanova",
    "Jansen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi",
    "Sato", "Tanaka", "Uysal", "Varga", "Weber", "Yilmaz", "Zhou",
)  # fmt: skip
ROLES: Final = (
    "data engineer", "product designer", "site reliability engineer", "account executive",
    "engineering manager", "backend developer", "security analyst", "product manager",
)  # fmt: skip
COMPANIES: Final = (
    "Northwind", "Bluepeak", "Quarry Labs", "Helio Systems", "Tidewater", "Copperleaf", "Orbitals",
)  # fmt: skip
TOPICS: Final = (
    "event streaming", "pricing analytics", "hiring at scale", "observability", "design systems",
    "customer onboarding", "cloud costs",
)  # fmt: skip
KIND_TEXT: Final[Mapping[InMailKind, tuple[str, str]]] = {
    "recruiter_outreach": (
        "A {role} role at {company}",
        "we are hiring a {role} at {company} and your experience looks like a strong match. "
        "Would you be open to a short call this week?",
    ),
    "talent_pipeline": (
        "Future {role} openings at {company}",
        "we are planning next year's {role} hires at {company} and would like to keep you in mind. "
        "May I send you updates when roles open?",
    ),
    "sales_prospecting": (
        "{company} and {topic}",
        "teams like yours use {company} to spend less time on {topic}. Could I show you a ten-minute demo?",
    ),
    "employer_branding": (
        "How our {role} team works at {company}",
        "here is a look at how the {role} team at {company} plans, ships and learns. "
        "Happy to answer any questions.",
    ),
    "event_invitation": (
        "Invitation: {topic} evening with {company}",
        "we are hosting an evening on {topic} with practitioners from {company}. Would you like a seat?",
    ),
}
REPLIES: Final = (
    "Thanks for reaching out, happy to talk. Tuesday works for me.",
    "Interesting, could you send more details?",
    "Yes, let's set up a call.",
    "Thanks! Not right now, but please keep me posted.",
)
DECLINE_REASONS: Final = ("not interested", "not looking right now", "wrong fit", None)


@dataclass(frozen=True, slots=True)
class Template:
    """A message template: a kind, a text, and the response rate it earns."""

    template_id: str
    kind: InMailKind
    personalised: bool
    rate: float
    subject: str
    body: str


def _templates(rng: random.Random, prefix: str) -> dict[tuple[InMailKind, bool], list[Template]]:
    templates: dict[tuple[InMailKind, bool], list[Template]] = {}
    short = {"recruiter_outreach": "ro", "talent_pipeline": "tp", "sales_prospecting": "sp",
             "employer_branding": "eb", "event_invitation": "ei"}  # fmt: skip
    for kind, (subject, body) in KIND_TEXT.items():
        for personalised in (False, True):
            low, high = PERSONALISED_RATE if personalised else GENERIC_RATE
            for number in range(1, TEMPLATES_PER_KIND + 1):
                words = {
                    "role": rng.choice(ROLES),
                    "company": rng.choice(COMPANIES),
                    "topic": rng.choice(TOPICS),
                }
                templates.setdefault((kind, personalised), []).append(
                    Template(
                        template_id=f"{prefix}-{short[kind]}-{'p' if personalised else 'g'}{number}",
                        kind=kind,
                        personalised=personalised,
                        rate=rng.uniform(low, high),
                        subject=subject.format(**words),
                        body=body.format(**words),
                    )
                )
    return templates


# The simulated world ----------------------------------------------------------------


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
    responds_to: SimInMail | None = None
    declines: bool = False


class _Error(msgspec.Struct, frozen=True):
    code: str
    message: str = ""


class _Reply(msgspec.Struct, frozen=True):
    ok: bool
    data: msgspec.Raw = msgspec.Raw(b"null")
    seq: int = 0
    error: _Error | None = None


RETRIES: Final = 6


class Simulation:
    """One run: plans ticks from the seed and sends them over one NATS connection."""

    def __init__(self, nc: NATS, options: SimulationOptions) -> None:
        self.nc = nc
        self.options = options.validated()
        assert self.options.start is not None and self.options.id_prefix is not None
        self.prefix: str = self.options.id_prefix
        self.start = month_start(self.options.start)
        end_month = self.options.start
        for _ in range(self.options.months):
            end_month = next_month(end_month)
        self.days = (month_start(end_month) - self.start).days
        self.rng = random.Random(self.options.seed)
        self.templates = _templates(self.rng, self.prefix)
        self.members = self._members()
        self.registered = Pool()
        self.by_tier: dict[Tier, Pool] = {tier: Pool() for tier in TIERS}
        self.open_profiles = Pool()
        self.joining: dict[int, list[int]] = {}
        for member in self.members:
            self.joining.setdefault(member.joined_day, []).append(member.index)
        self.actions: dict[int, list[tuple[int, Action, SimInMail]]] = {}
        self.follow_ups: dict[int, list[SimInMail]] = {}
        self.blocks: dict[int, list[tuple[int, int, int]]] = {}
        self.joined_today: list[int] = []
        self.serial = 0
        self.command_serial = 0
        self.commands: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()
        self.retries = 0
        self.first_seq = 0
        self.last_seq = 0
        self.sent: Counter[Segment] = Counter()
        self.responded: Counter[Segment] = Counter()
        self.expected: Counter[Segment] = Counter()
        """Sum of the model's response rates (in millionths: integers add up in any order)."""
        self.follow_up_originals = 0
        """Sum of the model's rates of followed-up originals, in millionths."""
        self.template_sent: Counter[str] = Counter()
        self.template_responded: Counter[str] = Counter()
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(_Reply)

    # Setup -----------------------------------------------------------------

    def _members(self) -> list[SimMember]:
        count = self.options.members
        tiers = _tier_quotas(count)
        self.rng.shuffle(tiers)
        levels = [level for level, _ in INTENSITIES]
        weights = [share for _, share in INTENSITIES]
        members = []
        for index, tier in enumerate(tiers):
            profile = PROFILES[tier]
            joined = 0 if self.rng.random() >= LATE_JOINERS else self.rng.randrange(self.days)
            members.append(
                SimMember(
                    index=index,
                    member_id=f"{self.prefix}-m{index}",
                    first_name=self.rng.choice(FIRST_NAMES),
                    last_name=self.rng.choice(LAST_NAMES),
                    tier=tier,
                    open_profile=self.rng.random() < profile.open_profile,
                    opted_out=self.rng.random() < OPTED_OUT_SHARE,
                    intensity=self.rng.choices(levels, weights)[0],
                    open_profile_rate=self.rng.uniform(*OPEN_PROFILE_RATE),
                    joined_day=joined,
                )
            )
        return members

    # Running ---------------------------------------------------------------

    async def run(self) -> Summary:
        """Probe the service, then play every tick; the summary of what happened."""
        self.first_seq = self.last_seq = await self._probe()
        started = time.perf_counter()
        with tqdm(total=self.days, unit="day", desc="simulating", disable=not self.options.progress) as bar:
            for day in range(self.days):
                now = self.start + timedelta(days=day, hours=12)
                for phase in (
                    self._plan_members(day, now),
                    self._plan_social(day, now),
                    self._plan_sends(day, now),
                    self._plan_responses(day, now),
                ):
                    await self._run_phase(phase)
                bar.update()
                bar.set_postfix(
                    commands=sum(self.commands.values()), refused=sum(self.refusals.values()), refresh=False
                )
        return self._summary(time.perf_counter() - started)

    async def _probe(self) -> int:
        """Check that the service honours occurred_at; the stream sequence before the run.

        A probe member registers a month before the start and is refreshed for the
        start month at its first instant. With trusted time that refresh is new and
        writes an event; with the server's clock the month is already refreshed (or
        has not begun), so nothing new is written.
        """
        probe = f"{self.prefix}-probe"
        # A fresh command id, so a prefix used before is refused (MEMBER_EXISTS) rather
        # than answered from the idempotency record of the earlier run.
        nonce = secrets.token_hex(4)
        registered_at = month_start(_previous_month(self.options.start or ""))
        registered = await self._probe_request(
            RegisterMember(
                command_id=f"{self.prefix}-probe-{nonce}-r",
                occurred_at=registered_at,
                member_id=probe,
                display_name="Simulation probe",
                email=f"{probe}@example.com",
                tier="premium_career",
            )
        )
        if not registered.ok:
            code = registered.error.code if registered.error else "?"
            if code == "MEMBER_EXISTS":
                raise SimulationError(
                    f"id prefix {self.prefix} was already used against this service; choose another "
                    "--id-prefix (or leave it out for a random one)"
                )
            raise SimulationError(f"the service refused the probe member: {_describe(registered)}")
        refreshed = await self._probe_request(
            RefreshCredits(
                command_id=f"{self.prefix}-probe-{nonce}-f",
                occurred_at=self.start,
                member_id=probe,
                month=self.options.start or "",
            )
        )
        if refreshed.error is not None and refreshed.error.code != "INVALID_TIME":
            raise SimulationError(f"the service refused the probe's refresh: {_describe(refreshed)}")
        # INVALID_TIME: by the server's clock the simulated start month has not begun yet.
        if not refreshed.ok or refreshed.seq <= registered.seq:
            raise SimulationError(
                "the InMail service ignores client time (occurred_at), so simulated months cannot "
                "be replayed: restart it with `inmail serve --trust-client-time`"
            )
        return refreshed.seq

    async def _probe_request(self, command: Command) -> _Reply:
        try:
            return await self._request(command)
        except SimulationError as exc:
            url = self.nc.connected_url.geturl() if self.nc.connected_url else "the NATS server"
            raise SimulationError(
                f"no InMail service answers at {url} ({exc}); start one with "
                "`inmail serve --trust-client-time`"
            ) from exc

    async def _run_phase(self, steps: list[Step]) -> None:
        """Run a phase: chains concurrently, the commands of each chain in planned order."""
        chains: dict[int, list[Step]] = {}
        for step in steps:
            chains.setdefault(step.chain, []).append(step)
        queue = deque(chains.values())

        async def worker() -> None:
            while queue:
                for step in queue.popleft():
                    self._settle(step, await self._request(step.command))

        await asyncio.gather(*(worker() for _ in range(min(self.options.concurrency, len(queue)))))

    async def _request(self, command: Command) -> _Reply:
        """Send one command; retried with the same command_id while the outcome is unknown."""
        name = type(command).__name__
        subject = subjects.command(name)
        payload = self._encoder.encode(command)
        failure: _Reply | None = None
        problem = ""
        for attempt in range(RETRIES):
            if attempt:
                self.retries += 1
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
            try:
                message = await self.nc.request(subject, payload, timeout=self.options.timeout)
            except nats.errors.NoRespondersError:
                problem = "no responders"
                continue
            except nats.errors.TimeoutError:
                # The command may or may not have been recorded; the same command_id settles it.
                problem = f"no reply within {self.options.timeout:g} s"
                continue
            except nats.errors.ConnectionClosedError as exc:
                raise SimulationError(f"the NATS connection closed: {exc}") from exc
            reply = self._decoder.decode(message.data)
            if reply.ok or reply.error is None or reply.error.code != "UNAVAILABLE":
                return reply
            failure = reply
        if failure is not None:
            return failure
        raise SimulationError(f"{name}: {problem} after {RETRIES} attempts")

    def _settle(self, step: Step, reply: _Reply) -> None:
        """Count a reply and let a success shape the future (its ids, its scheduled actions)."""
        self.commands[type(step.command).__name__] += 1
        if not reply.ok:
            self.refusals[reply.error.code if reply.error else "?"] += 1
            return
        self.last_seq = max(self.last_seq, reply.seq)
        if isinstance(step.command, SendInMail):
            single = msgspec.json.decode(reply.data, type=SentData)
            self._sent(step.inmails[0], single.inmail_id)
        elif isinstance(step.command, SendBulkInMail):
            bulk = msgspec.json.decode(reply.data, type=BulkSentData)
            for inmail, inmail_id in zip(step.inmails, bulk.inmail_ids, strict=True):
                self._sent(inmail, inmail_id)
        elif step.responds_to is not None:
            self._responded(step.responds_to, declined=step.declines)

    def _sent(self, inmail: SimInMail, inmail_id: str) -> None:
        inmail.inmail_id = inmail_id
        if self._settled(inmail):
            self.sent[inmail.segment] += 1
            self.expected[inmail.segment] += _micro(inmail.rate)
            if inmail.original is not None:
                self.follow_up_originals += _micro(inmail.original.rate)
        if inmail.template_id is not None:
            self.template_sent[inmail.template_id] += 1
        fate = inmail.fate
        if fate.read_after is not None:
            self._schedule(inmail.day + fate.read_after, "read", inmail)
            if fate.acknowledged:
                self._schedule(inmail.day + fate.read_after, "acknowledge", inmail)
        if fate.respond_after is not None:
            self._schedule(inmail.day + fate.respond_after, "respond", inmail)
        if fate.follow_up_after is not None and inmail.day + fate.follow_up_after < self.days:
            self.follow_ups.setdefault(inmail.day + fate.follow_up_after, []).append(inmail)

    def _schedule(self, day: int, action: Action, inmail: SimInMail) -> None:
        if day < self.days:
            self.actions.setdefault(day, []).append((inmail.serial, action, inmail))

    def _responded(self, inmail: SimInMail, *, declined: bool) -> None:
        if self._settled(inmail):
            self.responded[inmail.segment] += 1
        if inmail.template_id is not None:
            self.template_responded[inmail.template_id] += 1
        if declined and inmail.fate.blocks_after_decline:
            day = inmail.day + (inmail.fate.respond_after or 0) + 1
            if day < self.days:
                self.blocks.setdefault(day, []).append((inmail.serial, inmail.recipient, inmail.sender))

    def _settled(self, inmail: SimInMail) -> bool:
        return inmail.day < self.days - SETTLE_DAYS

    # Planning: every random draw of a tick happens here, before it runs ---------

    def _next_command_id(self) -> str:
        self.command_serial += 1
        return f"{self.prefix}-{self.command_serial}"

    def _plan_members(self, day: int, now: datetime) -> list[Step]:
        """Registrations, the month's refresh (the simulator plays the scheduler), tier and preferences."""
        steps: list[Step] = []
        established = len(self.registered)
        for index in self.joining.pop(day, []):
            member = self.members[index]
            steps.append(
                Step(
                    index,
                    RegisterMember(
                        command_id=self._next_command_id(),
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
            self._join(member)
        self.joined_today = [step.chain for step in steps]
        joined_today = set(self.joined_today)
        if day > 0 and now.day == 1:
            month = month_of(now)
            for member in self.members:
                if member.registered and member.index not in joined_today:
                    steps.append(
                        Step(
                            member.index,
                            RefreshCredits(
                                command_id=self._next_command_id(),
                                occurred_at=now,
                                member_id=member.member_id,
                                month=month,
                            ),
                        )
                    )
        if not established:
            return steps
        # Tier and preference changes do not scale with --activity: it is about sending.
        for _ in range(_poisson(self.rng, established * TIER_CHANGES_PER_MONTH / DAYS_PER_MONTH)):
            member = self.members[self.registered.pick(self.rng)]
            if member.index not in joined_today:
                steps.append(self._change_tier(member, now))
        for _ in range(_poisson(self.rng, established * PREFERENCE_CHANGES_PER_MONTH / DAYS_PER_MONTH)):
            member = self.members[self.registered.pick(self.rng)]
            if member.index not in joined_today:
                steps.append(self._change_preferences(member, now))
        return steps

    def _join(self, member: SimMember) -> None:
        member.registered = True
        self.registered.add(member.index)
        self.by_tier[member.tier].add(member.index)
        if member.open_profile:
            self.open_profiles.add(member.index)

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
        self.by_tier[member.tier].remove(member.index)
        member.tier = tier
        self.by_tier[tier].add(member.index)
        if tier == "free" and member.open_profile:
            # The service turns Open Profile off on a downgrade to a tier that cannot have it.
            member.open_profile = False
            self.open_profiles.remove(member.index)
        return Step(
            member.index,
            ChangeTier(
                command_id=self._next_command_id(), occurred_at=now, member_id=member.member_id, tier=tier
            ),
        )

    def _change_preferences(self, member: SimMember, now: datetime) -> Step:
        command_id = self._next_command_id()
        if member.tier != "free" and self.rng.random() < 0.8:
            member.open_profile = not member.open_profile
            if member.open_profile:
                self.open_profiles.add(member.index)
            else:
                self.open_profiles.remove(member.index)
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
        pairs = [(blocker, blocked) for _, blocker, blocked in sorted(self.blocks.pop(day, []))]
        population = len(self.registered)
        if population >= 2:
            for _ in range(_poisson(self.rng, population * BLOCKS_PER_MONTH / DAYS_PER_MONTH)):
                pairs.append((self.registered.pick(self.rng), self.registered.pick(self.rng)))
        for blocker, blocked in pairs:
            if blocker == blocked or blocked in self.members[blocker].blocked:
                continue
            self.members[blocker].blocked.add(blocked)
            self.members[blocked].blocked.add(blocker)
            steps.append(
                Step(
                    blocker,
                    BlockMember(
                        command_id=self._next_command_id(),
                        occurred_at=now,
                        member_id=self.members[blocker].member_id,
                        blocked_member_id=self.members[blocked].member_id,
                    ),
                )
            )
        if population < 2:
            return steps
        askers = [
            index for index in self.joined_today for _ in range(_poisson(self.rng, INITIAL_CONNECTIONS))
        ]
        for _ in range(_poisson(self.rng, population * CONNECTIONS_PER_MONTH / DAYS_PER_MONTH)):
            askers.append(self.registered.pick(self.rng))
        for asker in askers:
            other = self.registered.pick(self.rng)
            member = self.members[asker]
            # Never a pair already connected (either way) or blocked: the outcome would then
            # depend on which of two concurrent commands the service saw first.
            if other == asker or other in member.connected or other in member.blocked:
                continue
            member.connected.add(other)
            member.connections.append(other)
            peer = self.members[other]
            peer.connected.add(asker)
            peer.connections.append(asker)
            steps.append(
                Step(
                    asker,
                    ConnectMembers(
                        command_id=self._next_command_id(),
                        occurred_at=now,
                        member_id=member.member_id,
                        other_member_id=peer.member_id,
                    ),
                )
            )
        return steps

    def _plan_sends(self, day: int, now: datetime) -> list[Step]:
        """Follow-ups due today, then each tier's single and bulk InMails."""
        steps = [
            self._follow_up(original, day, now)
            for original in sorted(self.follow_ups.pop(day, []), key=lambda inmail: inmail.serial)
        ]
        if len(self.registered) < 2:
            return steps
        for tier in TIERS:
            profile, pool = PROFILES[tier], self.by_tier[tier]
            if not pool:
                continue
            volume = len(pool) * self.options.activity / DAYS_PER_MONTH
            for _ in range(_poisson(self.rng, volume * profile.singles_per_month)):
                step = self._single(self._sender(pool), profile, day, now)
                if step is not None:
                    steps.append(step)
            for _ in range(_poisson(self.rng, volume * profile.bulk_per_month)):
                step = self._bulk(self._sender(pool), profile, day, now)
                if step is not None:
                    steps.append(step)
        return steps

    def _sender(self, pool: Pool) -> SimMember:
        """A member of the pool, heavy senders more often (rejection sampling on intensity)."""
        for _ in range(20):
            member = self.members[pool.pick(self.rng)]
            if self.rng.random() * MAX_INTENSITY < member.intensity:
                return member
        return self.members[pool.pick(self.rng)]

    def _recipient(self, sender: SimMember, profile: TierProfile) -> SimMember | None:
        if sender.tier == "free":
            # A free member can only send free InMail: to a connection or an Open Profile member.
            if sender.connections and (
                not self.open_profiles or self.rng.random() >= profile.seeks_open_profile
            ):
                index = self.rng.choice(sender.connections)
            elif self.open_profiles:
                index = self.open_profiles.pick(self.rng)
            else:
                return None
        elif self.open_profiles and self.rng.random() < profile.seeks_open_profile:
            index = self.open_profiles.pick(self.rng)
        else:
            index = self.registered.pick(self.rng)
        return None if index == sender.index else self.members[index]

    def _template(self, profile: TierProfile, kind: InMailKind, *, bulk: bool = False) -> Template:
        personalised = self.rng.random() < (profile.personalised / 3 if bulk else profile.personalised)
        return self.rng.choice(self.templates[(kind, personalised)])

    def _single(self, sender: SimMember, profile: TierProfile, day: int, now: datetime) -> Step | None:
        recipient = self._recipient(sender, profile)
        if recipient is None:
            return None
        kind = self.rng.choice(profile.kinds)
        if sender.tier == "free":
            # A personal note rather than a template.
            subject, body = (
                f"Hello from {sender.first_name}",
                KIND_TEXT[kind][1].format(
                    role=self.rng.choice(ROLES),
                    company=self.rng.choice(COMPANIES),
                    topic=self.rng.choice(TOPICS),
                ),
            )
            template_id, personalised, rate = None, True, self.rng.uniform(*PERSONALISED_RATE)
        else:
            template = self._template(profile, kind)
            subject, body = template.subject, template.body
            template_id, personalised, rate = template.template_id, template.personalised, template.rate
        inmail = self._inmail(sender, recipient, profile, day, kind, template_id, subject, personalised, rate)
        return Step(
            sender.index,
            SendInMail(
                command_id=self._next_command_id(),
                occurred_at=now,
                sender_id=sender.member_id,
                recipient_id=recipient.member_id,
                subject=subject,
                body=_greeting(recipient, personalised) + body,
                kind=kind,
                template_id=template_id,
            ),
            inmails=(inmail,),
        )

    def _bulk(self, sender: SimMember, profile: TierProfile, day: int, now: datetime) -> Step | None:
        size = self.rng.randint(*profile.bulk_size)
        chosen: dict[int, None] = {}
        for _ in range(size * 3):
            if len(chosen) == size:
                break
            index = self.registered.pick(self.rng)
            candidate = self.members[index]
            # A recruiter's search leaves out who cannot be reached: one refusal sinks the batch.
            if index != sender.index and not candidate.opted_out and index not in sender.blocked:
                chosen[index] = None
        if len(chosen) < CURRENT_POLICY.bulk_min_recipients:
            return None
        kind = self.rng.choice(profile.kinds)
        template = self._template(profile, kind, bulk=True)
        recipients = [self.members[index] for index in chosen]
        inmails = tuple(
            self._inmail(
                sender, recipient, profile, day, kind, template.template_id, template.subject,
                template.personalised, template.rate,
            )
            for recipient in recipients
        )  # fmt: skip
        return Step(
            sender.index,
            SendBulkInMail(
                command_id=self._next_command_id(),
                occurred_at=now,
                sender_id=sender.member_id,
                recipient_ids=[recipient.member_id for recipient in recipients],
                subject=template.subject,
                body=("Hi, " if not template.personalised else "Hi there, ") + template.body,
                kind=kind,
                template_id=template.template_id,
            ),
            inmails=inmails,
        )

    def _follow_up(self, original: SimInMail, day: int, now: datetime) -> Step:
        sender, recipient = self.members[original.sender], self.members[original.recipient]
        profile = PROFILES[sender.tier]
        inmail = self._inmail(
            sender, recipient, profile, day, original.kind, original.template_id,
            original.subject, False, original.rate + self.rng.uniform(*FOLLOW_UP_LIFT), original=original,
        )  # fmt: skip
        assert original.inmail_id is not None, "only a sent InMail is followed up"
        return Step(
            sender.index,
            SendInMail(
                command_id=self._next_command_id(),
                occurred_at=now,
                sender_id=sender.member_id,
                recipient_id=recipient.member_id,
                subject=f"Following up: {original.subject}"[: CURRENT_POLICY.subject_max_chars],
                body=f"Hi {recipient.first_name}, just bringing my earlier message back to your attention.",
                kind=original.kind,
                template_id=original.template_id,
                follow_up_of=original.inmail_id,
            ),
            inmails=(inmail,),
        )

    def _inmail(
        self,
        sender: SimMember,
        recipient: SimMember,
        profile: TierProfile,
        day: int,
        kind: InMailKind,
        template_id: str | None,
        subject: str,
        personalised: bool,
        rate: float,
        *,
        original: SimInMail | None = None,
    ) -> SimInMail:
        """An InMail's segment, response rate and fate, drawn now so replies cannot change them."""
        segment: Segment
        if original is not None:
            segment = "follow_up"
        elif recipient.open_profile:
            segment, rate = "open_profile", recipient.open_profile_rate
        else:
            segment = "personalised" if personalised else "generic"
        self.serial += 1
        return SimInMail(
            serial=self.serial,
            sender=sender.index,
            recipient=recipient.index,
            day=day,
            segment=segment,
            rate=rate,
            kind=kind,
            template_id=template_id,
            subject=subject,
            fate=self._fate(rate, profile, follow_up=original is None),
            original=original,
        )

    def _fate(self, rate: float, profile: TierProfile, *, follow_up: bool) -> Fate:
        rng = self.rng
        # A fixed number of draws per InMail, whatever the outcome, keeps later draws stable
        # when one probability of the model is tuned.
        responds, respond_after = rng.random() < rate, _response_delay(rng)
        reads, read_after = rng.random() < READ_SHARE, _read_delay(rng)
        acknowledged, replies = rng.random() < ACK_SHARE, rng.random() < REPLY_SHARE
        blocks = rng.random() < BLOCK_AFTER_DECLINE
        follows, follow_up_after = rng.random() < profile.follow_up, rng.randint(6, 9)
        if responds:
            read_after = min(read_after, respond_after)
        unanswered = not responds or respond_after > follow_up_after
        return Fate(
            read_after=read_after if responds or reads else None,
            acknowledged=acknowledged,
            respond_after=respond_after if responds else None,
            replies=replies,
            blocks_after_decline=blocks and not replies,
            follow_up_after=follow_up_after if follow_up and follows and unanswered else None,
        )

    def _plan_responses(self, day: int, now: datetime) -> list[Step]:
        """Reads, acknowledgements and responses due today.

        They write the senders' aggregates, yet chain per InMail: their outcomes do not
        depend on one another (a refund is +1 whatever the order, and the month's
        refresh came earlier, in the member phase), and a busy recruiter's responses
        would otherwise queue behind each other.
        """
        steps: list[Step] = []
        due = sorted(self.actions.pop(day, []), key=lambda item: (item[0], ACTION_ORDER[item[1]]))
        for serial, action, inmail in due:
            assert inmail.inmail_id is not None
            recipient = self.members[inmail.recipient].member_id
            command_id = self._next_command_id()
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

    # Summary -----------------------------------------------------------------

    def _summary(self, elapsed: float) -> Summary:
        rates: list[SegmentRate] = []
        for segment in SEGMENTS:
            if segment == "follow_up":
                continue
            low, high = {"generic": GENERIC_RATE, "personalised": PERSONALISED_RATE}.get(
                segment, OPEN_PROFILE_RATE
            )
            rates.append(SegmentRate(segment, self.sent[segment], self.responded[segment], low, high))
        # A follow-up is measured against what its original would have earned: the model's
        # rates of the originals, scaled by how much of the model's expectation the other
        # segments achieved (responses still to come at the end). Comparing with the
        # segments' rates instead would be unfair: originals left unanswered for a week
        # come mostly from the weaker templates.
        responded = sum(self.responded[segment] for segment in SEGMENTS if segment != "follow_up")
        expected = sum(self.expected[segment] for segment in SEGMENTS if segment != "follow_up")
        achieved_share = responded * 1_000_000 / expected if expected else 1.0
        follow_ups = self.sent["follow_up"]
        baseline = self.follow_up_originals / 1_000_000 / follow_ups * achieved_share if follow_ups else 0.0
        rates.append(
            SegmentRate(
                "follow_up",
                self.sent["follow_up"],
                self.responded["follow_up"],
                baseline + FOLLOW_UP_LIFT[0],
                baseline + FOLLOW_UP_LIFT[1],
            )
        )
        options = self.options
        return Summary(
            members=options.members,
            months=options.months,
            start=options.start or "",
            seed=options.seed,
            id_prefix=self.prefix,
            concurrency=options.concurrency,
            activity=options.activity,
            commands=dict(self.commands),
            refusals=dict(self.refusals),
            retries=self.retries,
            first_seq=self.first_seq,
            last_seq=self.last_seq,
            elapsed=elapsed,
            segments=tuple(rates),
            templates={
                name: TemplateCount(count, self.template_responded[name])
                for name, count in sorted(self.template_sent.items())
            },
        )


def _tier_quotas(count: int) -> list[Tier]:
    """Tiers in the profiles' shares; every tier present once there are enough members."""
    quotas = {tier: int(profile.share * count) for tier, profile in PROFILES.items()}
    if count >= len(TIERS) * 2:
        for tier in TIERS:
            quotas[tier] = max(quotas[tier], 1)
    quotas["free"] += count - sum(quotas.values())
    return [tier for tier, quota in quotas.items() for _ in range(quota)]


def _micro(rate: float) -> int:
    return round(rate * 1_000_000)


def _greeting(recipient: SimMember, personalised: bool) -> str:
    return f"Hi {recipient.first_name}, " if personalised else "Hello, "


def _previous_month(month: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return f"{year - (number == 1):04d}-{(number - 2) % 12 + 1:02d}"


def _describe(reply: _Reply) -> str:
    return f"{reply.error.code}: {reply.error.message}" if reply.error else "no error given"


# Entry points ------------------------------------------------------------------------


async def simulate(target: NATS | str, options: SimulationOptions | None = None) -> Summary:
    """Run a simulation against the service behind ``target`` (a connection or a NATS URL)."""
    if isinstance(target, str):
        nc = await _connect(target)
        try:
            return await Simulation(nc, options or SimulationOptions()).run()
        finally:
            await nc.close()
    return await Simulation(target, options or SimulationOptions()).run()


async def _connect(url: str) -> NATS:
    async def quiet(*_: Any) -> None:
        # nats-py reports every connection hiccup on stderr; the requests' errors say enough.
        return None

    try:
        # Few attempts at first, so an unreachable URL fails in seconds, not minutes.
        nc = await nats.connect(
            url,
            name="inmail-simulate",
            connect_timeout=2,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.25,
            error_cb=quiet,
            disconnected_cb=quiet,
            reconnected_cb=quiet,
            closed_cb=quiet,
        )
    except Exception as exc:
        raise SimulationError(f"cannot reach NATS at {url}: {exc or type(exc).__name__}") from exc
    nc.options["max_reconnect_attempts"] = 60
    return nc
