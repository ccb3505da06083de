"""The simulated population as data: tier profiles, behaviour rates, words, message templates.

Every number here is a choice about how members behave; the planner turns them into traffic.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from contracts.types import InMailKind, Tier

# The rates the product's users quote; the model draws each template's (and each
# Open Profile member's) rate from these ranges.
GENERIC_RATE: Final = (0.05, 0.10)
PERSONALISED_RATE: Final = (0.15, 0.40)
OPEN_PROFILE_RATE: Final = (0.30, 0.45)
FOLLOW_UP_LIFT: Final = (0.05, 0.10)


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
    scheduled: float = 0.0
    """Share of single sends scheduled for a later day (Recruiter tiers)."""
    automated_follow_up: float = 0.0
    """Share of sends that plan an automated follow-up (Recruiter)."""


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
        scheduled=0.2,
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
        scheduled=0.2,
        automated_follow_up=0.3,
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
SCHEDULE_AHEAD_DAYS: Final = (1, 3)
SCHEDULED_HOUR: Final = 9
"""Scheduled sends go out at this hour, before the day's other traffic (which runs at noon)."""
AUTOMATED_FOLLOW_UP_DAYS: Final = 7
FLOOR_SENDER_DAILY: Final = 8
"""Recipients of the run's floor sender's daily bulk send: a recruiter blasting a generic
template at its connections, enough to be assessed every period, too rarely answered to stay
above the floor, and refused while its bulk InMail is suspended."""
FLOOR_SENDER_CONNECTIONS: Final = 40


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


def draw_templates(rng: random.Random, prefix: str) -> dict[tuple[InMailKind, bool], list[Template]]:
    """Generic and personalised templates of every kind, each with the response rate it earns."""
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
