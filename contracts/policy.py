"""The rules as versioned data: the tier catalogue and every limit of policy v1.

Every event records the policy version it was decided under. A later policy is
a new entry in ``POLICIES``; history keeps replaying under the version that
decided it, because the amounts a rule produced are stored in the events.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType

import msgspec

from contracts.types import Tier


class TierRules(msgspec.Struct, frozen=True, kw_only=True):
    """What a tier may do and how many credits it gets."""

    name: str
    """The tier as members know it."""
    monthly_allotment: int
    """Credits added on the first day of each calendar month (UTC)."""
    cap: int
    """Banked credits above this are forfeited at the monthly refresh."""
    paid: bool = True
    """Paid tiers may send charged InMail and turn on Open Profile."""
    bulk: bool = False
    """May send SendBulkInMail (Recruiter tiers)."""
    scheduled_sends: bool = False
    """May give SendInMail a ``send_at`` (section 8)."""
    automated_follow_ups: bool = False
    """May attach an ``automated_follow_up`` to a send (section 8)."""
    rate_floor: bool = False
    """Its InMails count towards the response-rate floor's assessments (section 9)."""


class Scheduling(msgspec.Struct, frozen=True, kw_only=True):
    """How far ahead a send may be scheduled, and when automated follow-ups may go out."""

    horizon: timedelta
    """Furthest a scheduled send's ``send_at`` may be after the command."""
    follow_up_min_days: int
    """Fewest days after delivery an automated follow-up may wait."""
    follow_up_max_days: int
    """Most days after delivery an automated follow-up may wait."""
    follow_up_default_days: int
    """Days after delivery an automated follow-up waits when ``after_days`` is left out."""


class Enforcement(msgspec.Struct, frozen=True, kw_only=True):
    """The response-rate floor (section 9): assessment periods, thresholds and stage lengths."""

    period: timedelta
    """Length of the consecutive assessment periods of a sender's InMails, from 00:00 UTC of
    the day of its first InMail."""
    assess_after: timedelta
    """How long after its end a period is assessed (responses until then count)."""
    min_inmails: int
    """Fewest InMails a period must hold for its rate to count (a warning period with fewer
    ends the warning)."""
    rate_floor: float
    """Response rate (a fraction) under which a period warns, and a warning period suspends."""
    warning: timedelta
    """Length of the warning period (stage ``warned``), itself assessed like a period."""
    suspension: timedelta
    """How long ``SendBulkInMail`` stays refused once suspended."""


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    """One version of the product's rules."""

    version: int
    tiers: Mapping[Tier, TierRules]
    subject_max_chars: int
    """Most characters (Unicode code points) in an InMail's subject."""
    body_max_chars: int
    """Most characters in the body of an InMail or a reply."""
    inmail_cost: int
    """Credits a charged InMail spends."""
    refund_window: timedelta
    """A response within this long after sending earns the credit back."""
    stats_response_window: timedelta
    """The window of ``responded_30d`` and ``response_rate_30d``."""
    bulk_min_recipients: int
    """Fewest recipients of a SendBulkInMail."""
    bulk_max_recipients: int
    """Most recipients of a SendBulkInMail."""
    scheduling: Scheduling
    """Scheduled sends and automated follow-ups (section 8)."""
    enforcement: Enforcement
    """The response-rate floor (section 9)."""

    def tier(self, tier: Tier) -> TierRules:
        """The rules of one tier."""
        return self.tiers[tier]


POLICY_V1 = Policy(
    version=1,
    tiers=MappingProxyType(
        {
            "free": TierRules(name="Free", monthly_allotment=0, cap=0, paid=False),
            "premium_career": TierRules(name="Premium Career", monthly_allotment=5, cap=15),
            "premium_business": TierRules(name="Premium Business", monthly_allotment=15, cap=45),
            "sales_navigator": TierRules(name="Sales Navigator", monthly_allotment=50, cap=150),
            "recruiter_lite": TierRules(
                name="Recruiter Lite",
                monthly_allotment=30,
                cap=120,
                bulk=True,
                scheduled_sends=True,
                rate_floor=True,
            ),
            "recruiter": TierRules(
                name="Recruiter",
                monthly_allotment=150,
                cap=600,
                bulk=True,
                scheduled_sends=True,
                automated_follow_ups=True,
                rate_floor=True,
            ),
        }
    ),
    subject_max_chars=200,
    body_max_chars=1900,
    inmail_cost=1,
    refund_window=timedelta(days=90),
    stats_response_window=timedelta(days=30),
    bulk_min_recipients=2,
    bulk_max_recipients=25,
    scheduling=Scheduling(
        horizon=timedelta(days=90),
        follow_up_min_days=3,
        follow_up_max_days=28,
        follow_up_default_days=7,
    ),
    enforcement=Enforcement(
        period=timedelta(days=14),
        assess_after=timedelta(days=7),
        min_inmails=100,
        rate_floor=0.13,
        warning=timedelta(days=14),
        suspension=timedelta(days=14),
    ),
)

POLICIES: Mapping[int, Policy] = MappingProxyType({POLICY_V1.version: POLICY_V1})
CURRENT_POLICY = POLICY_V1


def policy(version: int) -> Policy:
    """The policy of a given version (as recorded in an event)."""
    return POLICIES[version]
