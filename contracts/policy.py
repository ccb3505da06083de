"""The rules as versioned data: the tier catalogue and every limit of policy v1.

Every event records the policy version it was decided under. A later policy is
a new entry in ``POLICIES``; history keeps replaying under the version that
decided it, because the amounts a rule produced are stored in the events.

A policy is also a JSON document (``encode_policy``, ``decode_policy``; its JSON
Schema is ``policy_schema``), which ``inmail policy check`` validates with
``problems`` and ``inmail whatif`` replays the history under.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import get_args

import msgspec

from contracts.types import Tier


class TierRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
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


class Scheduling(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How far ahead a send may be scheduled, and when automated follow-ups may go out."""

    horizon: timedelta
    """Furthest a scheduled send's ``send_at`` may be after the command."""
    follow_up_min_days: int
    """Fewest days after delivery an automated follow-up may wait."""
    follow_up_max_days: int
    """Most days after delivery an automated follow-up may wait."""
    follow_up_default_days: int
    """Days after delivery an automated follow-up waits when ``after_days`` is left out."""


class Enforcement(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
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


class Policy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One version of the product's rules."""

    version: int
    """Recorded in every event decided under this policy (``policy``)."""
    tiers: Mapping[Tier, TierRules]
    """The rules of every tier, by its ``tier`` value."""
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


# The policy as a document -------------------------------------------------------------

_decoder = msgspec.json.Decoder(Policy)


def encode_policy(rules: Policy) -> bytes:
    """A policy as an indented JSON document (durations as ISO 8601, ``P90D``)."""
    plain = msgspec.structs.replace(rules, tiers=dict(rules.tiers))
    return msgspec.json.format(msgspec.json.encode(plain), indent=2) + b"\n"


def decode_policy(document: bytes) -> Policy:
    """A policy from its JSON document; malformed JSON or a wrong field raises ``msgspec.DecodeError``
    (``msgspec.ValidationError`` for a missing, unknown or mistyped field, naming its path)."""
    rules = _decoder.decode(document)
    return msgspec.structs.replace(rules, tiers=MappingProxyType(dict(rules.tiers)))


def policy_schema() -> dict[str, object]:
    """The JSON Schema of a policy document, generated from the Structs."""
    schema: dict[str, object] = msgspec.json.schema(Policy)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


class PolicyProblem(msgspec.Struct, frozen=True):
    """One thing wrong with a policy: where (a dotted path), the value found, and why it is wrong."""

    field: str
    value: object
    why: str

    def __str__(self) -> str:
        shown = self.value if isinstance(self.value, str) else msgspec.json.encode(self.value).decode()
        return f"{self.field} = {shown}: {self.why}"


def problems(rules: Policy) -> list[PolicyProblem]:
    """Everything a decision could not work with, one problem each (empty: the policy is sound)."""
    found = list(_negatives(rules, ""))
    if rules.version < 1:
        found.append(PolicyProblem("version", rules.version, "must be 1 or more"))
    for tier in get_args(Tier):
        if tier not in rules.tiers:
            found.append(PolicyProblem(f"tiers.{tier}", "missing", "every tier needs its rules"))
    for tier, tier_rules in rules.tiers.items():
        if tier_rules.cap < tier_rules.monthly_allotment:
            found.append(
                PolicyProblem(
                    f"tiers.{tier}.cap",
                    tier_rules.cap,
                    f"below the tier's monthly_allotment ({tier_rules.monthly_allotment}): "
                    "every refresh would forfeit credits it just granted",
                )
            )
        if not tier_rules.paid and tier_rules.monthly_allotment > 0:
            found.append(
                PolicyProblem(
                    f"tiers.{tier}.monthly_allotment",
                    tier_rules.monthly_allotment,
                    "a tier that is not paid cannot spend credits",
                )
            )
    found += _at_least_one(rules)
    found += _ranges(rules)
    return found


def _negatives(value: object, path: str) -> Iterator[PolicyProblem]:
    """Every negative number or duration, wherever it is."""
    if isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            yield from _negatives(getattr(value, name), _join(path, name))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _negatives(item, _join(path, str(key)))
    elif isinstance(value, bool):
        return
    elif isinstance(value, int | float) and value < 0:
        yield PolicyProblem(path, value, "must not be negative")
    elif isinstance(value, timedelta) and value < timedelta(0):
        yield PolicyProblem(path, _duration(value), "must not be negative")


def _at_least_one(rules: Policy) -> Iterator[PolicyProblem]:
    """Limits a decision divides by or needs room in: zero would refuse everything or loop."""
    positive: list[tuple[str, int | timedelta]] = [
        ("subject_max_chars", rules.subject_max_chars),
        ("body_max_chars", rules.body_max_chars),
        ("bulk_min_recipients", rules.bulk_min_recipients),
        ("enforcement.period", rules.enforcement.period),
        ("enforcement.warning", rules.enforcement.warning),
        ("enforcement.min_inmails", rules.enforcement.min_inmails),
    ]
    for path, value in positive:
        zero = timedelta(0) if isinstance(value, timedelta) else 0
        if value == zero:
            shown = _duration(value) if isinstance(value, timedelta) else value
            yield PolicyProblem(path, shown, "must be more than zero")


def _ranges(rules: Policy) -> Iterator[PolicyProblem]:
    """Fractions within 0-1, and each lower bound at most its upper bound."""
    floor = rules.enforcement.rate_floor
    if not 0 <= floor <= 1:
        yield PolicyProblem("enforcement.rate_floor", floor, "a response rate is a fraction between 0 and 1")
    if rules.bulk_min_recipients > rules.bulk_max_recipients:
        yield PolicyProblem(
            "bulk_max_recipients",
            rules.bulk_max_recipients,
            f"below bulk_min_recipients ({rules.bulk_min_recipients})",
        )
    s = rules.scheduling
    if not s.follow_up_min_days <= s.follow_up_default_days <= s.follow_up_max_days:
        yield PolicyProblem(
            "scheduling.follow_up_default_days",
            s.follow_up_default_days,
            f"outside follow_up_min_days-follow_up_max_days ({s.follow_up_min_days}-{s.follow_up_max_days})",
        )


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _duration(value: timedelta) -> str:
    """A duration as the document writes it (ISO 8601)."""
    return str(msgspec.json.decode(msgspec.json.encode(value)))
