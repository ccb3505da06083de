"""Operator commands over NATS alone: ``replay``, ``status``, ``verify`` and ``events``.

Each needs only the NATS URL: the stream is read through JetStream, and the
running service is asked through its query and admin subjects. Each prints its
output and returns the exit code; an operator mistake or an unreachable server
raises ``OperatorError`` with a one-line message, never a traceback.

``replay --from-seq N`` clears the read models and rebuilds them from sequence
``N``: events before ``N`` are ignored (useful after the stream was purged up to
``N``). InMails and members first seen before ``N`` are then absent from the read
models, and later events about them are left out.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from typing import Any, TextIO, TypeVar

import msgspec
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import StreamInfo
from nats.js.errors import NotFoundError
from tqdm import tqdm

from contracts import subjects
from contracts.admin import Replay, ReplayStarted
from contracts.events import decode_event
from contracts.policy import policy
from contracts.queries import (
    CreditBalanceData,
    HealthData,
    LedgerPage,
    ResponseStatsData,
)
from contracts.replies import ErrorBody
from contracts.types import ID_PATTERN
from eventstore import JetStreamEventStore, NatsUnreachable, StreamSpec, connect
from projections.reference import MemberCredits, ReferenceFold, SenderCounts

T = TypeVar("T")

REQUEST_TIMEOUT = 10.0
"""Longer than a query's own 5 s wait for ``min_seq``, so its UNAVAILABLE gets through."""

_MEMBER_ID = re.compile(ID_PATTERN)


class OperatorError(Exception):
    """A one-line message for the operator; the command exits non-zero."""


class _Envelope(msgspec.Struct):
    ok: bool
    data: msgspec.Raw = msgspec.Raw(b"null")
    as_of_seq: int = 0
    error: ErrorBody | None = None


@asynccontextmanager
async def _nats(url: str) -> AsyncIterator[NATS]:
    try:
        nc = await connect(url, name="inmail-operator")
    except NatsUnreachable as exc:
        raise OperatorError(str(exc)) from exc
    try:
        yield nc
    finally:
        await nc.close()


async def _ask(nc: NATS, subject: str, request: object, answer: type[T]) -> T:
    timeout = REQUEST_TIMEOUT
    try:
        reply = await nc.request(subject, msgspec.json.encode(request), timeout=timeout)
    except NoRespondersError as exc:
        raise OperatorError(
            f"no InMail service answers on {subject}: is `inmail serve` running on this NATS server?"
        ) from exc
    except (NatsTimeoutError, TimeoutError) as exc:
        raise OperatorError(f"no answer on {subject} within {timeout:g}s") from exc
    try:
        envelope = msgspec.json.decode(reply.data, type=_Envelope)
        if not envelope.ok:
            error = envelope.error or ErrorBody("UNAVAILABLE", "no error given")
            raise OperatorError(f"{subject} answered {error.code}: {error.message}")
        return msgspec.json.decode(envelope.data, type=answer)
    except msgspec.DecodeError as exc:
        raise OperatorError(f"{subject} answered something unreadable: {exc}") from exc


async def _stream_info(nc: NATS, stream: str) -> StreamInfo:
    try:
        return await nc.jetstream(timeout=5).stream_info(stream)
    except NotFoundError as exc:
        raise OperatorError(f"stream {stream} does not exist on this NATS server") from exc
    except (NoRespondersError, NatsTimeoutError, TimeoutError) as exc:
        raise OperatorError("JetStream does not answer on this NATS server") from exc


def _events_store(nc: NATS, stream: str) -> JetStreamEventStore:
    return JetStreamEventStore(nc, StreamSpec(name=stream, subjects=(subjects.EVENTS_ALL,)))


# replay ------------------------------------------------------------------------------


async def replay(
    nats_url: str,
    names: Sequence[str] | None = None,
    from_seq: int = 1,
    progress: bool = True,
    *,
    poll: float = 0.25,
    out: TextIO | None = None,
) -> int:
    """Ask the running service to rebuild read models from ``from_seq``; follow it to the end."""
    out = out or sys.stdout
    if from_seq < 1:
        raise OperatorError(f"--from-seq must be 1 or more, not {from_seq}")
    started_at = time.monotonic()
    async with _nats(nats_url) as nc:
        request = Replay(names=list(names) if names else None, from_seq=from_seq)
        started = await _ask(nc, subjects.admin("Replay"), request, ReplayStarted)
        base = started.from_seq - 1
        total = max(started.target_seq - base, 0)
        with tqdm(
            total=total, unit="ev", desc="replay", disable=not progress, file=sys.stderr, leave=False
        ) as bar:
            while True:
                health = await _ask(nc, subjects.query("Health"), {}, HealthData)
                for name in started.names:
                    problem = health.problems.get(name, "")
                    if problem.startswith("stopped"):
                        raise OperatorError(f"replay failed: projection {name} {problem}")
                reached = min(health.projections.get(name, 0) for name in started.names)
                bar.update(max(0, min(reached, started.target_seq) - base - bar.n))
                if reached >= started.target_seq:
                    break
                await asyncio.sleep(poll)
    elapsed = time.monotonic() - started_at
    out.write(
        f"replayed {', '.join(started.names)} from seq {started.from_seq} "
        f"to {started.target_seq} ({total} events) in {elapsed:.1f}s\n"
    )
    return 0


# status ------------------------------------------------------------------------------


async def status(nats_url: str, *, out: TextIO | None = None, stream: str = subjects.EVENTS_STREAM) -> int:
    """Print the stream's size and sequences and each projection's position and lag.

    Exit code 1 when the service does not answer or a projection has a problem.
    """
    out = out or sys.stdout
    async with _nats(nats_url) as nc:
        info = await _stream_info(nc, stream)
        state = info.state
        lines = [
            f"stream {stream}: {state.messages} events, {_size(state.bytes)}, "
            f"seq {state.first_seq}..{state.last_seq}"
        ]
        code = 0
        try:
            health = await _ask(nc, subjects.query("Health"), {}, HealthData)
        except OperatorError as exc:
            lines.append(f"service: not answering ({exc})")
            code = 1
        else:
            lines.append(f"service: {health.status}")
            for name, seq in sorted(health.projections.items()):
                line = f"  {name:<16} at seq {seq:>10}   lag {max(state.last_seq - seq, 0)}"
                if name in health.problems:
                    line += f"   {health.problems[name]}"
                    code = 1
                lines.append(line)
    out.write("\n".join(lines) + "\n")
    return code


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


# verify ------------------------------------------------------------------------------


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
            f"{self.what}: {self.field} is {self.actual} in the read model, "
            f"{self.expected} from the events"
        )


async def verify(
    nats_url: str,
    *,
    from_seq: int = 1,
    out: TextIO | None = None,
    stream: str = subjects.EVENTS_STREAM,
) -> int:
    """Recompute balances and response counts from the events; print every difference (exit 1 on any)."""
    out = out or sys.stdout
    found = await differences(nats_url, from_seq=from_seq, stream=stream)
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
) -> list[Difference]:
    """Every disagreement between the read models and a reference fold of the events.

    On a live stream, a read model may already include events that arrived after the
    fold: a member or sender that differs is checked again after folding the newer
    events, up to ``rounds`` times.
    """
    if from_seq < 1:
        raise OperatorError(f"--from-seq must be 1 or more, not {from_seq}")
    async with _nats(nats_url) as nc:
        store = _events_store(nc, stream)
        fold = ReferenceFold()
        members: set[str] | None = None
        senders: set[str] | None = None
        found: list[Difference] = []
        start = from_seq
        for _ in range(rounds):
            last = (await _stream_info(nc, stream)).state.last_seq
            if last >= start:
                async for message in store.follow(start, until=last):
                    try:
                        event = decode_event(message.data)
                    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                        raise OperatorError(f"the event at seq {message.seq} cannot be read: {exc}") from exc
                    fold.apply(message.seq, event)
            start = max(start, last + 1)
            await _ask(nc, subjects.query("Health"), {"min_seq": last}, HealthData)
            counts = fold.senders()
            check = _Checker(nc, last, concurrency)
            found = await check.all(
                {m: fold.members[m] for m in (fold.members if members is None else members)},
                {s: counts.get(s, SenderCounts()) for s in (counts if senders is None else senders)},
            )
            if not found:
                return []
            members = {d.what.split(" ", 1)[1] for d in found if d.what.startswith("member ")}
            senders = {d.what.split(" ", 1)[1] for d in found if d.what.startswith("sender ")}
        return found


class _Checker:
    """Asks the read models about members and senders, a bounded number at a time."""

    def __init__(self, nc: NATS, min_seq: int, concurrency: int) -> None:
        self.nc = nc
        self.min_seq = min_seq
        self.gate = asyncio.Semaphore(concurrency)

    async def all(
        self, members: dict[str, MemberCredits], senders: dict[str, SenderCounts]
    ) -> list[Difference]:
        checks = [self.member(m, credits) for m, credits in sorted(members.items())]
        checks += [self.sender(s, counts) for s, counts in sorted(senders.items())]
        results = await asyncio.gather(*checks)
        return [difference for result in results for difference in result]

    async def ask(self, name: str, answer: type[T], **fields: Any) -> T | OperatorError:
        async with self.gate:
            try:
                return await _ask(self.nc, subjects.query(name), {**fields, "min_seq": self.min_seq}, answer)
            except OperatorError as exc:
                if "UNKNOWN_MEMBER" not in str(exc):
                    raise
                return exc

    async def member(self, member_id: str, expected: MemberCredits) -> list[Difference]:
        what = f"member {member_id}"
        balance = await self.ask("CreditBalance", CreditBalanceData, member_id=member_id)
        if isinstance(balance, OperatorError):
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
        ledger = await self.ask("CreditLedger", LedgerPage, member_id=member_id, limit=1)
        if not isinstance(ledger, OperatorError):
            latest = ledger.entries[0].balance_after if ledger.entries else 0
            if latest != expected.balance:
                found.append(Difference(what, "ledger balance_after", expected.balance, latest))
        return found

    async def sender(self, sender_id: str, expected: SenderCounts) -> list[Difference]:
        stats = await self.ask("ResponseStats", ResponseStatsData, sender_id=sender_id)
        assert not isinstance(stats, OperatorError)
        return [
            Difference(f"sender {sender_id}", name, getattr(expected, name), getattr(stats, name))
            for name in (field.name for field in fields(SenderCounts))
            if getattr(stats, name) != getattr(expected, name)
        ]


# events ------------------------------------------------------------------------------


async def events(
    nats_url: str,
    member: str | None = None,
    from_seq: int = 1,
    follow: bool = False,
    *,
    out: TextIO | None = None,
    stream: str = subjects.EVENTS_STREAM,
) -> int:
    """Print events as JSON lines ``{"seq", "subject", "event"}``, the event exactly as stored.

    With ``member``: the events on that member's subject and those naming them as
    recipient, connection or blocked member. With ``follow``: keep printing new ones.
    """
    out = out or sys.stdout
    if from_seq < 1:
        raise OperatorError(f"--from-seq must be 1 or more, not {from_seq}")
    if member is not None and not _MEMBER_ID.match(member):
        raise OperatorError(f"--member {member!r} is not a member id (1-64 of A-Z a-z 0-9 _ -)")
    own_subject = subjects.member_events(member) if member else ""
    async with _nats(nats_url) as nc:
        last = (await _stream_info(nc, stream)).state.last_seq
        if not follow and last < from_seq:
            return 0
        store = _events_store(nc, stream)
        async for message in store.follow(from_seq, until=None if follow else last):
            if member and message.subject != own_subject and not _names(message.data, member):
                continue
            subject = msgspec.json.encode(message.subject).decode()
            out.write(f'{{"seq":{message.seq},"subject":{subject},"event":{message.data.decode()}}}\n')
            if follow:
                out.flush()
    return 0


class _Mentions(msgspec.Struct):
    recipient_id: str | None = None
    other_member_id: str | None = None
    blocked_member_id: str | None = None


_mentions = msgspec.json.Decoder(_Mentions)


def _names(data: bytes, member: str) -> bool:
    try:
        mentions = _mentions.decode(data)
    except msgspec.DecodeError:
        return False
    return member in (mentions.recipient_id, mentions.other_member_id, mentions.blocked_member_id)
