"""Traffic as careful clients send it: many connections, ~64 commands in flight, retries with the
same command_id on a timeout or UNAVAILABLE, every attempt written in the ledger."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from nats.aio.client import Client as NATS

from contracts import subjects
from eventstore import connect
from tests.faults.ledger import Answer, Command, Ledger

EXPECTED_REFUSALS = frozenset({"ALREADY_RESPONDED", "INSUFFICIENT_CREDITS"})
"""What this workload may be refused: an InMail answered twice, a sender out of credits."""

ATTEMPT_TIMEOUT = 5.0
"""How long one attempt waits for its answer (as the contract's client library does)."""
DEADLINE = 60.0
"""How long a client keeps retrying one command."""


class Clients:
    """Several client connections sending commands and writing every attempt in the ledger."""

    def __init__(self, connections: list[NATS], ledger: Ledger) -> None:
        self.connections = connections
        self.ledger = ledger
        self._next = itertools.cycle(range(len(connections)))

    async def send(self, name: str, *, copies: int = 1, **fields: Any) -> Command:
        """Send a new command (``copies`` times at once, one id), each copy retried until answered."""
        command = self.ledger.command(name, {"command_id": f"c_{uuid.uuid4().hex[:20]}", **fields})
        await asyncio.gather(*(self._until_answered(command) for _ in range(copies)))
        return command

    async def resend(self, command: Command) -> dict[str, Any] | None:
        """The same command again, as a client that never got its answer would; its reply."""
        for _ in range(20):
            answer = await self._attempt(command)
            if not answer.unavailable:
                return answer.reply
            await asyncio.sleep(0.2)
        return None

    async def _until_answered(self, command: Command) -> None:
        give_up = asyncio.get_running_loop().time() + DEADLINE
        pause = 0.1
        while True:
            answer = await self._attempt(command)
            command.answers.append(answer)
            if not answer.unavailable or asyncio.get_running_loop().time() > give_up:
                return
            await asyncio.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 2, 1.0)

    async def _attempt(self, command: Command) -> Answer:
        nc = self.connections[next(self._next)]
        body = msgspec.json.encode(command.body)
        sent_at = datetime.now(UTC)
        try:
            message = await nc.request(subjects.command(command.name), body, timeout=ATTEMPT_TIMEOUT)
            reply: dict[str, Any] | None = msgspec.json.decode(message.data)
        except Exception:
            # Timed out, no service subscribed, or not connected: the outcome is unknown.
            reply = None
        return Answer(sent_at, datetime.now(UTC), reply)


@asynccontextmanager
async def clients(url: str, ledger: Ledger, connections: int = 8) -> AsyncIterator[Clients]:
    """``connections`` client connections that reconnect by themselves (through server restarts)."""
    opened = [await connect(url, name=f"fault-client-{n}") for n in range(connections)]
    try:
        yield Clients(opened, ledger)
    finally:
        for nc in opened:
            await nc.close()


@dataclass(slots=True)
class Cast:
    """Who takes part: senders with credits, recipients who answer, the InMails awaiting an answer."""

    senders: list[str]
    recipients: list[str]
    open_inmails: list[tuple[str, str]] = field(default_factory=list)
    """(inmail_id, recipient_id) of InMails sent and acknowledged, not yet answered by this workload."""
    answered: list[tuple[str, str]] = field(default_factory=list)

    @property
    def members(self) -> list[str]:
        return self.senders + self.recipients


async def register_cast(clients: Clients, senders: int = 16, recipients: int = 48) -> Cast:
    """Recruiters (150 credits) and free-tier recipients (every InMail to them is charged)."""
    prefix = uuid.uuid4().hex[:8]
    cast = Cast([f"s{prefix}_{n}" for n in range(senders)], [f"r{prefix}_{n}" for n in range(recipients)])
    gate = asyncio.Semaphore(16)

    async def register(member_id: str, tier: str) -> None:
        async with gate:
            email = f"{member_id}@e.io"
            command = await clients.send(
                "RegisterMember", member_id=member_id, display_name=member_id, email=email, tier=tier
            )
        assert command.ok is not None, command.answers

    await asyncio.gather(
        *(register(m, "recruiter") for m in cast.senders), *(register(m, "free") for m in cast.recipients)
    )
    return cast


async def traffic(
    clients: Clients, cast: Cast, seconds: float, *, in_flight: int = 64, storms: int = 0
) -> None:
    """Sends and answers from ``in_flight`` workers for ``seconds``; ``storms`` of them send each
    command 20 times at once instead (a retry storm of one command_id)."""
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds
    rng = random.Random()

    async def worker(copies: int) -> None:
        while loop.time() < stop_at:
            await _one(clients, cast, rng, copies)

    await asyncio.gather(*(worker(20 if n < storms else 1) for n in range(in_flight)))


async def _one(clients: Clients, cast: Cast, rng: random.Random, copies: int) -> None:
    if cast.open_inmails and rng.random() < 0.3:
        inmail_id, recipient = cast.open_inmails.pop(rng.randrange(len(cast.open_inmails)))
        cast.answered.append((inmail_id, recipient))
    elif cast.answered and rng.random() < 0.03:
        # Answering again: a reply after a decline is recorded, anything else ALREADY_RESPONDED.
        inmail_id, recipient = rng.choice(cast.answered)
    else:
        sender, recipient = rng.choice(cast.senders), rng.choice(cast.recipients)
        sent = await clients.send(
            "SendInMail", copies=copies, sender_id=sender, recipient_id=recipient, subject="A role", body="Hi"
        )
        if sent.ok is not None:
            cast.open_inmails.append((sent.ok["data"]["inmail_id"], recipient))
        return
    if rng.random() < 0.5:
        await clients.send("RecordReply", copies=copies, inmail_id=inmail_id, member_id=recipient, body="Yes")
    else:
        await clients.send("DeclineInMail", copies=copies, inmail_id=inmail_id, member_id=recipient)
