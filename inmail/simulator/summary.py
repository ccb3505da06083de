"""What a run did: the tally kept as replies settle, and the Summary made from it for operators."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from contracts.types import next_month
from inmail.simulator.corpus import FOLLOW_UP_LIFT, GENERIC_RATE, OPEN_PROFILE_RATE, PERSONALISED_RATE
from inmail.simulator.model import SEGMENTS, Segment, SimInMail
from inmail.simulator.options import SimulationOptions

SETTLE_DAYS: Final = 28
"""Response rates count InMails sent at least this long before the end: most responses come
within days, so younger InMails would make every rate look low."""

SEGMENT_NAMES: Final[Mapping[Segment, str]] = {
    "generic": "generic",
    "personalised": "personalised",
    "open_profile": "Open Profile",
    "follow_up": "follow-up",
}

EXPECTED_REFUSALS: Final = frozenset(
    {"INSUFFICIENT_CREDITS", "BLOCKED", "RECIPIENT_OPTED_OUT", "TIER_NOT_ALLOWED", "BULK_SUSPENDED"}
)
"""Refusals a realistic run meets because members act on what they know; any other code is a
problem (of the simulator or of the service)."""


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
    scheduled: int = 0
    """Scheduled sends the service accepted."""
    automated_follow_ups: int = 0
    """Sends the service accepted with an automated follow-up."""
    due: Mapping[str, int] = field(default_factory=dict)
    """What the service's due work did, by outcome (RunDue's ``outcomes``, added up)."""
    floor_sender: str | None = None
    """The member meant to fall under the response-rate floor."""

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
            "scheduled": self.scheduled,
            "automated_follow_ups": self.automated_follow_ups,
            "due": dict(sorted(self.due.items())),
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
        lines += self._render_due()
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

    def _render_due(self) -> list[str]:
        due = self.due
        floor = f" (sender {self.floor_sender})" if self.floor_sender else ""
        return [
            f"Scheduled sends: {self.scheduled:,} scheduled, {due.get('delivered', 0):,} delivered, "
            f"{due.get('cancelled', 0):,} cancelled",
            f"Automated follow-ups: {self.automated_follow_ups:,} planned, {due.get('follow_up_sent', 0):,} "
            f"sent, {due.get('follow_up_cancelled', 0):,} cancelled",
            f"Response-rate floor{floor}: {due.get('warned', 0)} warning(s), {due.get('suspended', 0)} "
            f"suspension(s), {due.get('warning_ended', 0)} warning(s) ended, "
            f"{due.get('suspension_ended', 0)} suspension(s) ended, "
            f"{due.get('assessed', 0)} other assessment(s)",
        ]


class Tally:
    """What a run has done so far, counted as its replies settle; its summary at the end."""

    def __init__(self, days: int) -> None:
        self.settled_before = days - SETTLE_DAYS
        """InMails planned before this day count towards the response rates."""
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
        self.scheduled = 0
        self.automated_follow_ups = 0
        self.due: Counter[str] = Counter()
        self.floor_sender: str | None = None

    def count_sent(self, inmail: SimInMail) -> None:
        """Count an InMail the service accepted."""
        if inmail.day < self.settled_before:
            self.sent[inmail.segment] += 1
            self.expected[inmail.segment] += _micro(inmail.rate)
            if inmail.original is not None:
                self.follow_up_originals += _micro(inmail.original.rate)
        if inmail.template_id is not None:
            self.template_sent[inmail.template_id] += 1

    def count_response(self, inmail: SimInMail) -> None:
        """Count a response (a reply or a decline) the service recorded."""
        if inmail.day < self.settled_before:
            self.responded[inmail.segment] += 1
        if inmail.template_id is not None:
            self.template_responded[inmail.template_id] += 1

    def summary(self, options: SimulationOptions, elapsed: float) -> Summary:
        """The run's summary, its options as run (validated)."""
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
        return Summary(
            members=options.members,
            months=options.months,
            start=options.start or "",
            seed=options.seed,
            id_prefix=options.id_prefix or "",
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
            scheduled=self.scheduled,
            automated_follow_ups=self.automated_follow_ups,
            due=dict(self.due),
            floor_sender=self.floor_sender,
        )


def _micro(rate: float) -> int:
    return round(rate * 1_000_000)
