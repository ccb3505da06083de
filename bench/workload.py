"""Realistic members and commands for the service benchmarks.

Senders are Recruiter members (paid, with credits); recipients are Premium Business
members with Open Profile on, so an InMail to them is free and a sustained load never
runs out of credits, while every send still goes the whole way: the sender's
state from the cache, a fresh read of the recipient, the decision, one appended
``InMailSent`` event of about 820 bytes, the reply.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from bench.load import Op
from contracts.types import Tier
from inmail.client import InMailClient

INMAIL_SUBJECT = "Staff backend engineer, event-driven payments platform (remote, EU)"
INMAIL_BODY = (
    "Hi Dana, I lead hiring for the payments platform team. Your talk on idempotent consumers "
    "stood out: we are moving our ledger to an event-sourced design on NATS and need someone who "
    "has lived with exactly-once projections in production. The role is fully remote within the "
    "EU, with a quarterly on-site week. Would you be open to a 20-minute call next week?"
)


async def connect(url: str, name: str) -> InMailClient:
    """The client a user would use, as the load generator.

    One attempt per request (deadline 0) and a generous wait: a retry would hide a
    failure inside a figure, so a refusal or a lost reply stops the benchmark instead.
    """
    return await InMailClient.connect(url, name=name, deadline=0, attempt_timeout=30)


@dataclass(frozen=True, slots=True)
class Members:
    """The benchmark's members, registered through the service."""

    senders: Sequence[str]
    recipients: Sequence[str]


async def register(
    client: InMailClient, count: int, tier: Tier, *, prefix: str, open_profile: bool, in_flight: int = 64
) -> list[str]:
    """Register ``count`` members through the service, ``in_flight`` at a time."""
    ids = [f"{prefix}-{i}" for i in range(count)]
    queue = iter(ids)

    async def worker() -> None:
        for member_id in queue:
            await client.register_member(
                member_id,
                display_name=f"Bench member {member_id}",
                email=f"{member_id}@example.com",
                tier=tier,
                open_profile=open_profile,
                command_id=f"reg-{member_id}",
            )

    await asyncio.gather(*(worker() for _ in range(min(in_flight, count))))
    return ids


async def setup_members(client: InMailClient, senders: int, recipients: int) -> Members:
    """Senders (Recruiter) and Open Profile recipients with ids of their own for this run."""
    run = uuid.uuid4().hex[:6]
    return Members(
        senders=await register(client, senders, "recruiter", prefix=f"s{run}", open_profile=False),
        recipients=await register(
            client, recipients, "premium_business", prefix=f"r{run}", open_profile=True
        ),
    )


def send_op(client: InMailClient, members: Members, *, seed: int = 1) -> Op:
    """A SendInMail from a random sender to a random recipient; raises unless it succeeds."""
    rng = random.Random(seed)
    senders, recipients = members.senders, members.recipients

    async def op(index: int) -> None:
        await client.send_inmail(
            senders[rng.randrange(len(senders))],
            recipient_id=recipients[rng.randrange(len(recipients))],
            subject=INMAIL_SUBJECT,
            body=INMAIL_BODY,
        )

    return op


async def warm_up(client: InMailClient, members: Members, in_flight: int = 64) -> None:
    """One SendInMail from every sender: a new service process loads each sender's aggregate once.

    Measure a fresh service only after this, or its first seconds measure cold loads.
    """
    queue = iter(members.senders)

    async def worker() -> None:
        for sender in queue:
            await send_from(client, sender, members.recipients)(0)

    await asyncio.gather(*(worker() for _ in range(min(in_flight, len(members.senders)))))


def send_from(client: InMailClient, sender: str, recipients: Sequence[str]) -> Op:
    """SendInMail from one given sender (a member whose aggregate grows)."""
    sent = 0

    async def op(index: int) -> None:
        nonlocal sent
        recipient = recipients[sent % len(recipients)]
        sent += 1
        await client.send_inmail(sender, recipient_id=recipient, subject=INMAIL_SUBJECT, body=INMAIL_BODY)

    return op
