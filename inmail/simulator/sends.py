"""The send phase of a day: who sends which InMail to whom, as singles, bulk and follow-ups.

Recruiters schedule some singles for a later morning and plan automated follow-ups on
some (the service sends or cancels those by itself); the run's floor sender blasts its
connections with generic templates. Each InMail's segment, response rate and fate are
drawn as it is planned, so replies cannot change them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from contracts.commands import AutomatedFollowUp, SendBulkInMail, SendInMail
from contracts.policy import CURRENT_POLICY
from contracts.types import InMailKind
from inmail.simulator.corpus import (
    AUTOMATED_FOLLOW_UP_DAYS,
    COMPANIES,
    DAYS_PER_MONTH,
    FLOOR_SENDER_DAILY,
    FOLLOW_UP_LIFT,
    KIND_TEXT,
    MAX_INTENSITY,
    PERSONALISED_RATE,
    PROFILES,
    ROLES,
    SCHEDULE_AHEAD_DAYS,
    SCHEDULED_HOUR,
    TIERS,
    TOPICS,
    Template,
    TierProfile,
)
from inmail.simulator.draws import draw_fate, poisson
from inmail.simulator.model import Pool, Segment, SimInMail, SimMember, Step, World


class SendPlanner:
    """Plans the InMails of each day from the tier profiles."""

    def __init__(
        self,
        world: World,
        rng: random.Random,
        templates: dict[tuple[InMailKind, bool], list[Template]],
        activity: float,
        next_command_id: Callable[[], str],
    ) -> None:
        self.world = world
        self.rng = rng
        self.templates = templates
        self.activity = activity
        self.next_command_id = next_command_id
        self.serial = 0
        """Of the InMails planned so far."""

    def plan(self, day: int, now: datetime) -> list[Step]:
        """Follow-ups due today, then each tier's single and bulk InMails."""
        steps = [
            self._follow_up(original, day, now)
            for original in sorted(self.world.follow_ups.pop(day, []), key=lambda inmail: inmail.serial)
        ]
        if len(self.world.registered) < 2:
            return steps
        for tier in TIERS:
            profile, pool = PROFILES[tier], self.world.by_tier[tier]
            if not pool:
                continue
            volume = len(pool) * self.activity / DAYS_PER_MONTH
            for _ in range(poisson(self.rng, volume * profile.singles_per_month)):
                step = self._single(self._sender(pool), profile, day, now)
                if step is not None:
                    steps.append(step)
            for _ in range(poisson(self.rng, volume * profile.bulk_per_month)):
                step = self._bulk(self._sender(pool), profile, day, now)
                if step is not None:
                    steps.append(step)
        return steps + self._floor_sender(day, now)

    def _sender(self, pool: Pool) -> SimMember:
        """A member of the pool, heavy senders more often (rejection sampling on intensity)."""
        for _ in range(20):
            member = self.world.members[pool.pick(self.rng)]
            if self.rng.random() * MAX_INTENSITY < member.intensity:
                return member
        return self.world.members[pool.pick(self.rng)]

    def _recipient(self, sender: SimMember, profile: TierProfile) -> SimMember | None:
        if sender.tier == "free":
            # A free member can only send free InMail: to a connection or an Open Profile member.
            if sender.connections and (
                not self.world.open_profiles or self.rng.random() >= profile.seeks_open_profile
            ):
                index = self.rng.choice(sender.connections)
            elif self.world.open_profiles:
                index = self.world.open_profiles.pick(self.rng)
            else:
                return None
        elif self.world.open_profiles and self.rng.random() < profile.seeks_open_profile:
            index = self.world.open_profiles.pick(self.rng)
        else:
            index = self.world.registered.pick(self.rng)
        return None if index == sender.index else self.world.members[index]

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
        ahead = self.rng.randint(*SCHEDULE_AHEAD_DAYS) if self.rng.random() < profile.scheduled else 0
        automated = self.rng.random() < profile.automated_follow_up
        inmail = self._inmail(
            sender, recipient, profile, day + ahead, kind, template_id, subject, personalised, rate,
            automated=automated,
        )  # fmt: skip
        delivery_morning = now.replace(hour=SCHEDULED_HOUR) + timedelta(days=ahead)
        return Step(
            sender.index,
            SendInMail(
                command_id=self.next_command_id(),
                occurred_at=now,
                sender_id=sender.member_id,
                recipient_id=recipient.member_id,
                subject=subject,
                body=_greeting(recipient, personalised) + body,
                kind=kind,
                template_id=template_id,
                send_at=delivery_morning if ahead else None,
                automated_follow_up=_automated_follow_up(recipient) if automated else None,
            ),
            inmails=(inmail,),
        )

    def _floor_sender(self, day: int, now: datetime) -> list[Step]:
        """The floor sender's daily bulk send of a generic template to its connections (free,
        rarely answered); refused while its bulk InMail is suspended."""
        sender = next((m for m in self.world.members if m.floor_sender and m.registered), None)
        if sender is None:
            return []
        reachable = [
            index for index in sender.connections
            if index not in sender.blocked and not self.world.members[index].open_profile
        ]  # fmt: skip
        if len(reachable) < CURRENT_POLICY.bulk_min_recipients:
            return []
        profile = PROFILES[sender.tier]
        chosen = self.rng.sample(reachable, min(FLOOR_SENDER_DAILY, len(reachable)))
        template = self.rng.choice(self.templates[("recruiter_outreach", False)])
        inmails = tuple(
            self._inmail(
                sender, self.world.members[index], profile, day, "recruiter_outreach",
                template.template_id, template.subject, False, template.rate, automated=True,
            )
            for index in chosen
        )  # fmt: skip
        bulk = SendBulkInMail(
            command_id=self.next_command_id(),
            occurred_at=now,
            sender_id=sender.member_id,
            recipient_ids=[self.world.members[index].member_id for index in chosen],
            subject=template.subject,
            body="Hello, " + template.body,
            kind="recruiter_outreach",
            template_id=template.template_id,
        )
        return [Step(sender.index, bulk, inmails=inmails)]

    def _bulk(self, sender: SimMember, profile: TierProfile, day: int, now: datetime) -> Step | None:
        size = self.rng.randint(*profile.bulk_size)
        chosen: dict[int, None] = {}
        for _ in range(size * 3):
            if len(chosen) == size:
                break
            index = self.world.registered.pick(self.rng)
            candidate = self.world.members[index]
            # A recruiter's search leaves out who cannot be reached: one refusal sinks the batch.
            if index != sender.index and not candidate.opted_out and index not in sender.blocked:
                chosen[index] = None
        if len(chosen) < CURRENT_POLICY.bulk_min_recipients:
            return None
        kind = self.rng.choice(profile.kinds)
        template = self._template(profile, kind, bulk=True)
        recipients = [self.world.members[index] for index in chosen]
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
                command_id=self.next_command_id(),
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
        sender, recipient = self.world.members[original.sender], self.world.members[original.recipient]
        profile = PROFILES[sender.tier]
        inmail = self._inmail(
            sender, recipient, profile, day, original.kind, original.template_id,
            original.subject, False, original.rate + self.rng.uniform(*FOLLOW_UP_LIFT), original=original,
        )  # fmt: skip
        assert original.inmail_id is not None, "only a sent InMail is followed up"
        return Step(
            sender.index,
            SendInMail(
                command_id=self.next_command_id(),
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
        automated: bool = False,
    ) -> SimInMail:
        """An InMail's segment, response rate and fate, drawn now so replies cannot change them.

        ``automated``: no manual follow-up is planned for it (the service follows it up by
        itself, or it is the floor sender's, who never follows up).
        """
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
            fate=draw_fate(self.rng, rate, profile, follow_up=original is None and not automated),
            original=original,
        )


def _automated_follow_up(recipient: SimMember) -> AutomatedFollowUp:
    return AutomatedFollowUp(
        after_days=AUTOMATED_FOLLOW_UP_DAYS,
        subject="Following up",
        body=f"Hi {recipient.first_name}, in case my message got buried: would a short call suit you?",
    )


def _greeting(recipient: SimMember, personalised: bool) -> str:
    return f"Hi {recipient.first_name}, " if personalised else "Hello, "
