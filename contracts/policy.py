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
            "recruiter_lite": TierRules(name="Recruiter Lite", monthly_allotment=30, cap=120, bulk=True),
            "recruiter": TierRules(name="Recruiter", monthly_allotment=150, cap=600, bulk=True),
        }
    ),
    subject_max_chars=200,
    body_max_chars=1900,
    inmail_cost=1,
    refund_window=timedelta(days=90),
    stats_response_window=timedelta(days=30),
    bulk_min_recipients=2,
    bulk_max_recipients=25,
)

POLICIES: Mapping[int, Policy] = MappingProxyType({POLICY_V1.version: POLICY_V1})
CURRENT_POLICY = POLICY_V1


def policy(version: int) -> Policy:
    """The policy of a given version (as recorded in an event)."""
    return POLICIES[version]
