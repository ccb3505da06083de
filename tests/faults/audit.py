"""After a fault: the ledger against the stream, the read models and ``inmail verify``.

Every command answered ok is in the stream with the sequence it was answered with;
re-sent, it gets the same reply and writes nothing; a refused command wrote
nothing, and was refused for a reason the workload gives; an attempt answered
UNAVAILABLE wrote nothing that a later attempt then reported; no event twice;
every charged InMail with a response refunded exactly once; each balance the same
from the ledger, from the events and from ``CreditBalance``; ``inmail verify``
finds no difference.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec

from contracts import subjects
from inmail.ops.verify import differences
from tests.faults.ledger import Command, Ledger
from tests.faults.workload import EXPECTED_REFUSALS, Cast, Clients

CLOCK_SLACK = timedelta(milliseconds=5)


@dataclass(frozen=True, slots=True)
class Figures:
    """What one run sent and what became of it."""

    sent: int
    attempts: int
    unanswered: int
    """Attempts with no answer in time (each retried with the same command_id)."""
    unavailable: int
    """Attempts answered UNAVAILABLE (each retried with the same command_id)."""
    acknowledged: int
    refused: int
    lost: int
    doubled: int
    events: int

    def __str__(self) -> str:
        return (
            f"sent {self.sent}, attempts {self.attempts} ({self.unanswered} unanswered, "
            f"{self.unavailable} UNAVAILABLE), "
            f"acknowledged {self.acknowledged}, refused {self.refused}, lost {self.lost}, "
            f"doubled {self.doubled}, events {self.events}"
        )


@dataclass(frozen=True, slots=True)
class Stored:
    seq: int
    event: dict[str, Any]


async def audit(clients: Clients, cast: Cast, url: str) -> Figures:
    """Check every guarantee; the run's figures (asserting lost = doubled = 0 and the rest)."""
    ledger = clients.ledger
    assert not ledger.unanswered(), [c.answers for c in ledger.unanswered()][:3]
    events = await _events(clients)
    by_command: dict[str, list[Stored]] = defaultdict(list)
    for stored in events:
        by_command[stored.event["command_id"]].append(stored)
    lost = [c for c in ledger.acknowledged() if not _recorded_as_answered(c, by_command)]
    doubled = _doubled(events)
    figures = Figures(
        sent=len(ledger.commands),
        attempts=ledger.attempts(),
        unanswered=ledger.unanswered_attempts(),
        unavailable=ledger.unavailable_answers(),
        acknowledged=len(ledger.acknowledged()),
        refused=len(ledger.refused()),
        lost=len(lost),
        doubled=len(doubled),
        events=len(events),
    )
    assert not doubled, f"{figures}; doubled: {doubled[:5]}"
    missing = [c.command_id for c in lost][:5]
    assert not lost, f"{figures}; answered ok, not in the stream at that seq: {missing}"
    refusals = Counter(c.refusal for c in ledger.refused())
    assert set(refusals) <= EXPECTED_REFUSALS, f"refused for no reason of the workload's: {refusals}"
    for command in ledger.commands.values():
        _check_answers(command, by_command.get(command.command_id, []))
    _check_refunds(events)
    await _check_resent(clients, ledger, events[-1].seq if events else 0)
    await _check_balances(clients, cast, events)
    assert await differences(url) == []
    return figures


def _recorded_as_answered(command: Command, by_command: dict[str, list[Stored]]) -> bool:
    assert command.ok is not None
    stored = by_command.get(command.command_id, [])
    return bool(stored) and max(s.seq for s in stored) == command.ok["seq"]


def _doubled(events: list[Stored]) -> list[str]:
    """Event ids stored twice, and effects a command had twice: an event type twice for one command
    (and one recipient: a bulk send writes one InMailSent per recipient)."""
    ids = Counter(s.event["event_id"] for s in events)
    effects = Counter((s.event["command_id"], s.event["type"], s.event.get("recipient_id")) for s in events)
    twice = [f"event {i}" for i, n in ids.items() if n > 1]
    return twice + [f"effect {e}" for e, n in effects.items() if n > 1]


def _check_answers(command: Command, stored: list[Stored]) -> None:
    oks = [a.reply for a in command.answers if a.reply is not None and a.reply["ok"]]
    assert all(reply == oks[0] for reply in oks), f"{command.command_id} answered ok differently: {oks}"
    if command.ok is None:
        assert not stored, f"{command.command_id} refused ({command.refusal}) but recorded"
        return
    assert command.refusal is None, f"{command.command_id} both refused and acknowledged"
    until = command.nothing_recorded_until
    if until is not None:
        # Decided after the attempt answered UNAVAILABLE had ended: that attempt recorded nothing.
        first = min(datetime.fromisoformat(s.event["occurred_at"]) for s in stored)
        assert first > until - CLOCK_SLACK, f"{command.command_id} answered UNAVAILABLE, recorded at {first}"


def _check_refunds(events: list[Stored]) -> None:
    def inmails(*types: str) -> list[str]:
        return [s.event["inmail_id"] for s in events if s.event["type"] in types]

    charged = {s.event["inmail_id"] for s in events if s.event["type"] == "InMailSent" and s.event["charged"]}
    responded = set(inmails("InMailReplied", "InMailDeclined"))
    refunds = Counter(inmails("CreditRefunded"))
    assert {i: n for i, n in refunds.items() if n != 1} == {}, "a credit refunded twice"
    assert set(refunds) == charged & responded, "a charged InMail with a response without its refund"


async def _check_resent(clients: Clients, ledger: Ledger, last_seq: int) -> None:
    gate = asyncio.Semaphore(64)

    async def again(command: Command) -> None:
        async with gate:
            assert await clients.resend(command) == command.ok, command.command_id

    await asyncio.gather(*(again(c) for c in ledger.acknowledged()))
    info = await clients.connections[0].jetstream().stream_info(subjects.EVENTS_STREAM)
    assert info.state.last_seq == last_seq, "a re-sent command wrote again"


async def _check_balances(clients: Clients, cast: Cast, events: list[Stored]) -> None:
    from_events: dict[str, int] = defaultdict(int)
    for stored in events:
        event = stored.event
        match event["type"]:
            case "MemberRegistered" | "TierChanged":
                from_events[event["member_id"]] += event["granted"]
            case "CreditsRefreshed":
                from_events[event["member_id"]] += event["granted"] - event["forfeited"]
            case "CreditsForfeited":
                from_events[event["member_id"]] -= event["amount"]
            case "InMailSent" if event["charged"]:
                from_events[event["sender_id"]] -= 1
            case "CreditRefunded":
                from_events[event["member_id"]] += 1
    # Refreshes reach the members without a client asking: the ledger takes them from the events.
    refreshes = Counter[str]()
    for stored in events:
        if stored.event["type"] == "CreditsRefreshed":
            refreshes[stored.event["member_id"]] += stored.event["granted"] - stored.event["forfeited"]
    from_ledger = {m: b + refreshes[m] for m, b in clients.ledger.balances().items()}
    nc = clients.connections[0]
    last = events[-1].seq if events else 0
    for member_id in cast.members:
        body = msgspec.json.encode({"member_id": member_id, "min_seq": last})
        reply = await nc.request(subjects.query("CreditBalance"), body, timeout=10)
        answer = msgspec.json.decode(reply.data)
        assert answer["ok"], answer
        balances = (from_ledger.get(member_id, 0), from_events[member_id], answer["data"]["balance"])
        assert len(set(balances)) == 1, f"{member_id}: ledger, events, CreditBalance = {balances}"


async def _events(clients: Clients) -> list[Stored]:
    js = clients.connections[0].jetstream()
    last = (await js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
    found: list[Stored] = []
    if last == 0:
        return found
    sub = await js.subscribe(subjects.EVENTS_ALL, ordered_consumer=True)
    try:
        while not found or found[-1].seq < last:
            message = await sub.next_msg(timeout=10)
            found.append(Stored(message.metadata.sequence.stream, msgspec.json.decode(message.data)))
    finally:
        await sub.unsubscribe()
    return found
