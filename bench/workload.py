"""Realistic members and commands for the service benchmarks.

Senders are Recruiter members (paid, with credits); recipients are Premium Business
members with Open Profile on, so an InMail to them is free and a sustained load never
runs out of credits, while every send still goes the whole way: the sender's
state from the cache, a fresh read of the recipient, the decision, one appended
``InMailSent`` event of about 820 bytes, the reply.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from bench.load import Op, Requester
from contracts import subjects
from contracts.commands import RegisterMember, SendInMail

SEND_SUBJECT = subjects.command("SendInMail")
REGISTER_SUBJECT = subjects.command("RegisterMember")

INMAIL_SUBJECT = "Staff backend engineer, event-driven payments platform (remote, EU)"
INMAIL_BODY = (
    "Hi Dana, I lead hiring for the payments platform team. Your talk on idempotent consumers "
    "stood out: we are moving our ledger to an event-sourced design on NATS and need someone who "
    "has lived with exactly-once projections in production. The role is fully remote within the "
    "EU, with a quarterly on-site week. Would you be open to a 20-minute call next week?"
)


class _Error(msgspec.Struct, frozen=True):
    code: str
    message: str = ""


class _Reply(msgspec.Struct, frozen=True):
    ok: bool
    seq: int = 0
    error: _Error | None = None


_decode_reply = msgspec.json.Decoder(_Reply).decode
_encode = msgspec.json.Encoder().encode


class CommandFailed(RuntimeError):
    """The service refused a command the benchmark expected to succeed."""


def check(reply: bytes) -> int:
    """The sequence in a successful reply; raises on a refusal."""
    decoded = _decode_reply(reply)
    if not decoded.ok:
        error = decoded.error
        raise CommandFailed(f"{error.code}: {error.message}" if error else "refused without error")
    return decoded.seq


@dataclass(frozen=True, slots=True)
class Members:
    """The benchmark's members, registered through the service."""

    senders: Sequence[str]
    recipients: Sequence[str]


async def register(
    requester: Requester, count: int, tier: str, *, prefix: str, open_profile: bool, in_flight: int = 64
) -> list[str]:
    """Register ``count`` members through the service, ``in_flight`` at a time."""
    ids = [f"{prefix}-{i}" for i in range(count)]
    queue = iter(ids)

    async def worker() -> None:
        for member_id in queue:
            command = RegisterMember(
                command_id=f"reg-{member_id}",
                member_id=member_id,
                display_name=f"Bench member {member_id}",
                email=f"{member_id}@example.com",
                tier=tier,  # type: ignore[arg-type]
                open_profile=open_profile,
            )
            check(await requester.request(REGISTER_SUBJECT, _encode(command)))

    await asyncio.gather(*(worker() for _ in range(min(in_flight, count))))
    return ids


async def setup_members(requester: Requester, senders: int, recipients: int) -> Members:
    """Senders (Recruiter) and Open Profile recipients with ids of their own for this run."""
    run = uuid.uuid4().hex[:6]
    return Members(
        senders=await register(requester, senders, "recruiter", prefix=f"s{run}", open_profile=False),
        recipients=await register(
            requester, recipients, "premium_business", prefix=f"r{run}", open_profile=True
        ),
    )


def send_op(requester: Requester, members: Members, *, seed: int = 1) -> Op:
    """A SendInMail from a random sender to a random recipient; raises unless it succeeds."""
    rng = random.Random(seed)
    prefix = uuid.uuid4().hex[:10]
    counter = itertools.count()
    senders, recipients = members.senders, members.recipients

    async def op(index: int) -> None:
        command = SendInMail(
            command_id=f"{prefix}{next(counter):x}",
            sender_id=senders[rng.randrange(len(senders))],
            recipient_id=recipients[rng.randrange(len(recipients))],
            subject=INMAIL_SUBJECT,
            body=INMAIL_BODY,
        )
        check(await requester.request(SEND_SUBJECT, _encode(command)))

    return op


async def warm_up(requester: Requester, members: Members, in_flight: int = 64) -> None:
    """One SendInMail from every sender: a new service process loads each sender's aggregate once.

    Measure a fresh service only after this, or its first seconds measure cold loads.
    """
    queue = iter(members.senders)

    async def worker() -> None:
        for sender in queue:
            await send_from(requester, sender, members.recipients)(0)

    await asyncio.gather(*(worker() for _ in range(min(in_flight, len(members.senders)))))


def send_from(requester: Requester, sender: str, recipients: Sequence[str]) -> Op:
    """SendInMail from one given sender (a member whose aggregate grows)."""
    prefix = uuid.uuid4().hex[:10]
    counter = itertools.count()

    async def op(index: int) -> None:
        number = next(counter)
        command = SendInMail(
            command_id=f"{prefix}{number:x}",
            sender_id=sender,
            recipient_id=recipients[number % len(recipients)],
            subject=INMAIL_SUBJECT,
            body=INMAIL_BODY,
        )
        check(await requester.request(SEND_SUBJECT, _encode(command)))

    return op
