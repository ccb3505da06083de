"""``inmail verify``: the read models against a reference fold of the events (``projections.reference``).

Events that cannot be read are left out of the fold, as the read models leave them
out (quarantined); each is listed. A read model that stopped, or whose stream was
replaced under it, cannot be verified: its problem is listed and verify fails.

Besides balances and response counts: every member's enforcement stage, every
sender's pending scheduled InMails and follow-ups, and, where the operator may
read stream ``INMAIL_NOTIFICATIONS``, exactly one email alert per delivery that
deserves one.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TextIO, TypeVar

import msgspec
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError

from contracts import subjects
from contracts.events import decode_event
from contracts.notifications import EmailNotification
from contracts.policy import policy
from eventstore import JetStreamEventStore, StoreUnavailable, StreamSpec
from inmail.client import InMailClient, InMailError
from inmail.ops.client import (
    ask,
    check_from_seq,
    connected,
    events_store,
    refused,
    service,
    stream_info,
)
from inmail.ops.quarantine import quarantine_line
from projections.reference import MemberCredits, ReferenceFold, SenderCounts

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Difference:
    """One value where a read model disagrees with the events."""

    what: str
    """``member <id>`` or ``sender <id>``."""
    field: str
    expected: object
    actual: object

    def __str__(self) -> str:
        return (
            f"{self.what}: {self.field} is {self.actual} in the read model, {self.expected} from the events"
        )


async def verify(
    nats_url: str,
    *,
    from_seq: int = 1,
    out: TextIO | None = None,
    stream: str = subjects.EVENTS_STREAM,
    creds: Path | None = None,
) -> int:
    """Recompute balances and response counts from the events; print every difference (exit 1 on any)."""
    out = out or sys.stdout
    async with connected(nats_url, creds) as nc, service(nc) as client:
        health = await ask(client, client.health(), subjects.query("Health"))
    for event in health.quarantined:
        out.write(quarantine_line(event) + "\n")
    stopped = {name: problem for name, problem in health.problems.items() if name in health.projections}
    if stopped:
        for name, problem in sorted(stopped.items()):
            out.write(f"read model {name}: {problem}\n")
        out.write("the read models cannot be verified until these problems are solved\n")
        return 1
    found = await differences(nats_url, from_seq=from_seq, stream=stream, creds=creds)
    for difference in found:
        out.write(f"{difference}\n")
    out.write(f"{len(found)} difference{'s' if len(found) != 1 else ''}\n")
    return 1 if found else 0


async def differences(
    nats_url: str,
    *,
    from_seq: int = 1,
    stream: str = subjects.EVENTS_STREAM,
    concurrency: int = 32,
    rounds: int = 3,
    creds: Path | None = None,
) -> list[Difference]:
    """Every disagreement between the read models and a reference fold of the events.

    On a live stream, a read model may already include events that arrived after the
    fold: a member or sender that differs is checked again after folding the newer
    events, up to ``rounds`` times.
    """
    check_from_seq(from_seq)
    async with connected(nats_url, creds) as nc, service(nc) as client:
        store = events_store(nc, stream)
        fold = ReferenceFold()
        members: set[str] | None = None
        senders: set[str] | None = None
        found: list[Difference] = []
        start = from_seq
        for _ in range(rounds):
            last = (await stream_info(nc, stream)).state.last_seq
            if last >= start:
                async for message in store.follow(start, until=last):
                    try:
                        event = decode_event(message.data)
                    except (msgspec.ValidationError, msgspec.DecodeError):
                        continue  # quarantined: the read models leave it out too
                    fold.apply(message.seq, event)
            start = max(start, last + 1)
            await ask(client, client.health(min_seq=last), subjects.query("Health"))
            counts = fold.senders()
            check = _Checker(client.after(last), concurrency, fold)
            found = await check.all(
                {m: fold.members[m] for m in (fold.members if members is None else members)},
                {s: counts.get(s, SenderCounts()) for s in (counts if senders is None else senders)},
            )
            found += await _alert_differences(nc, fold)
            if not found:
                return []
            members = {d.what.split(" ", 1)[1] for d in found if d.what.startswith("member ")}
            senders = {d.what.split(" ", 1)[1] for d in found if d.what.startswith("sender ")}
        return found


class _Checker:
    """Asks the read models about members and senders, a bounded number at a time."""

    def __init__(self, client: InMailClient, concurrency: int, fold: ReferenceFold) -> None:
        self.client = client
        self.gate = asyncio.Semaphore(concurrency)
        self.fold = fold

    async def all(
        self, members: dict[str, MemberCredits], senders: dict[str, SenderCounts]
    ) -> list[Difference]:
        checks = [self.member(m, credits) for m, credits in sorted(members.items())]
        checks += [self.stage(m) for m in sorted(members)]
        checks += [self.sender(s, counts) for s, counts in sorted(senders.items())]
        checks += [self.scheduled(s) for s in sorted(set(senders) & set(self.fold.scheduled))]
        results = await asyncio.gather(*checks)
        return [difference for result in results for difference in result]

    async def ask(self, answer: Awaitable[T], name: str) -> T | None:
        """The answer, or None for an unknown member."""
        async with self.gate:
            try:
                return await answer
            except InMailError as exc:
                if exc.code == "UNKNOWN_MEMBER":
                    return None
                raise refused(self.client, exc, subjects.query(name)) from exc

    async def member(self, member_id: str, expected: MemberCredits) -> list[Difference]:
        what = f"member {member_id}"
        balance = await self.ask(self.client.credit_balance(member_id), "CreditBalance")
        if balance is None:
            return [Difference(what, "existence", "registered", "unknown")]
        rules = policy(expected.policy).tier(expected.tier)
        wanted: dict[str, object] = {
            "tier": expected.tier,
            "balance": expected.balance,
            "monthly_allotment": rules.monthly_allotment,
            "cap": rules.cap,
            "granted": expected.granted,
            "spent": expected.spent,
            "refunded": expected.refunded,
            "forfeited": expected.forfeited,
        }
        found = [
            Difference(what, name, value, getattr(balance, name))
            for name, value in wanted.items()
            if getattr(balance, name) != value
        ]
        ledger = await self.ask(self.client.credit_ledger(member_id, limit=1), "CreditLedger")
        if ledger is not None:
            latest = ledger.entries[0].balance_after if ledger.entries else 0
            if latest != expected.balance:
                found.append(Difference(what, "ledger balance_after", expected.balance, latest))
        return found

    async def stage(self, member_id: str) -> list[Difference]:
        expected = self.fold.stages[member_id]
        status = await self.ask(self.client.enforcement_status(member_id), "EnforcementStatus")
        if status is None:
            return [Difference(f"member {member_id}", "enforcement", "registered", "unknown")]
        wanted = {
            "stage": expected.stage,
            "since": expected.since,
            "until": expected.until,
            "period_start": expected.period_start,
            "sent": expected.sent,
            "responded": expected.responded,
        }
        return [
            Difference(f"member {member_id}", f"enforcement {name}", value, getattr(status, name))
            for name, value in wanted.items()
            if getattr(status, name) != value
        ]

    async def scheduled(self, sender_id: str) -> list[Difference]:
        """The sender's scheduled box holds what the fold says is still pending."""
        pending, before = 0, None
        while True:
            page = await self.ask(
                self.client.inbox(sender_id, box="scheduled", status="scheduled", limit=200, before=before),
                "Inbox",
            )
            if page is None:
                return [Difference(f"sender {sender_id}", "existence", "registered", "unknown")]
            pending += len(page.items)
            if page.next is None:
                break
            before = page.next
        expected = len(self.fold.scheduled[sender_id])
        if pending == expected:
            return []
        return [Difference(f"sender {sender_id}", "scheduled", expected, pending)]

    async def sender(self, sender_id: str, expected: SenderCounts) -> list[Difference]:
        stats = await self.ask(self.client.response_stats(sender_id), "ResponseStats")
        assert stats is not None
        return [
            Difference(f"sender {sender_id}", name, getattr(expected, name), getattr(stats, name))
            for name in (field.name for field in fields(SenderCounts))
            if getattr(stats, name) != getattr(expected, name)
        ]


async def _alert_differences(nc: NATS, fold: ReferenceFold) -> list[Difference]:
    """Every delivery folded that deserves an email alert has exactly one; no other has any.

    Skipped where there is no such stream (no command side ever ran) or it cannot be
    read: only the ``notifier`` role may read it once the server is secured.
    """
    spec = StreamSpec(name=subjects.NOTIFICATIONS_STREAM, subjects=(f"{subjects.NOTIFICATIONS_ROOT}.>",))
    store = JetStreamEventStore(nc, spec)
    published: Counter[str] = Counter()
    try:
        last = (await store.stream_info()).state.last_seq
        if last:
            async for message in store.follow(1, until=last):
                alert = msgspec.json.decode(message.data, type=EmailNotification)
                if alert.inmail_id in fold.inmails:
                    published[alert.inmail_id] += 1
    except (NatsError, StoreUnavailable):
        return []
    return [
        Difference("notifications", f"alerts for InMail {inmail_id}", int(inmail_id in fold.alerts), count)
        for inmail_id in sorted(fold.alerts | set(published))
        if (count := published[inmail_id]) != int(inmail_id in fold.alerts)
    ]
