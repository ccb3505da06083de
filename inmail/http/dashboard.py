"""What the dashboard shows, gathered through the service's queries over NATS, as every client reads.

Nothing here reads a read model's tables: each figure is the answer to a query
(``Health``, ``ResponseStats``, ``CreditBalance``, ``CreditLedger``, ``Inbox``, and
``EnforcementStatus`` where the service answers it), so the dashboard works the
same in a process that runs no projections. Command rates are this process's
own, from its metrics. Response rates cover the InMails sent in the 90 and the
30 days up to the latest event (the stream's "now", which is the past in a
simulated history).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar, get_args

import msgspec
from nats.aio.client import Client as NATS

from contracts import subjects
from contracts.queries import (
    CreditBalance,
    CreditBalanceData,
    CreditLedger,
    Health,
    HealthData,
    Inbox,
    InboxPage,
    InMailStatus,
    LedgerPage,
    ResponseStats,
    ResponseStatsData,
)
from contracts.types import InMailKind, Tier
from inmail.http.charts import BarRow
from inmail.http.live import LiveEvents
from inmail.observability.metrics import Metrics

REQUEST_TIMEOUT = 10.0
"""Longer than a query's own 5 s wait, so that its UNAVAILABLE gets through."""

T = TypeVar("T")

Grouping = Literal["tier", "kind", "template"]
GROUPINGS: tuple[Grouping, ...] = ("tier", "kind", "template")
WINDOWS = (90, 30)
"""Days of sending the response rates cover, ending at the latest event."""
TEMPLATES_SHOWN = 10
RATES_FRESH_FOR = 5.0
"""Seconds a response-rate chart is reused while the stream moves (each costs a query per bar)."""
SAMPLES_KEPT = 300
RECEIVED_COUNTED = 200
"""Received InMails counted per status at most (one Inbox page); more show as "200+"."""


class Unavailable(Exception):
    """No answer from the service (starting, or NATS is gone); the message says why."""


class Refused(Exception):
    """The service answered with an error code (e.g. ``UNKNOWN_MEMBER``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class _Error(msgspec.Struct):
    code: str
    message: str


class _Envelope(msgspec.Struct):
    ok: bool
    data: msgspec.Raw = msgspec.Raw(b"null")
    error: _Error | None = None


class Dashboard:
    """The dashboard's figures, read from a running service."""

    def __init__(self, nc: NATS, live: LiveEvents, metrics: Metrics | None, rates: CommandRates) -> None:
        self.nc = nc
        self.live = live
        self.metrics = metrics
        self.rates = rates
        self._charts: dict[Grouping, tuple[float, int, list[BarRow]]] = {}

    async def overview(self) -> dict[str, Any]:
        """Stream and projection positions, health, and this process's commands."""
        health = await self._ask(Health(), HealthData)
        return {
            "status": health.status,
            "stream_seq": max(health.stream_seq, self.live.stream_seq),
            "projections": [
                {"name": name, "position": seq, "lag": health.lag.get(name)}
                for name, seq in sorted(health.projections.items())
            ],
            "problems": health.problems,
            "commands": command_totals(self.metrics) if self.metrics is not None else None,
        }

    async def response_rates(self, grouping: Grouping) -> list[BarRow]:
        """A row per tier, kind or template with InMails sent in 90 days: the response rate in each window."""
        now = time.monotonic()
        cached = self._charts.get(grouping)
        if cached is not None and (cached[1] == self.live.stream_seq or now - cached[0] < RATES_FRESH_FOR):
            return cached[2]
        end = self.live.latest_time or datetime.now(UTC)
        groups = self._groups(grouping)
        asked = [
            self._ask(_stats_query(grouping, group, end - timedelta(days=days)), ResponseStatsData)
            for group in groups
            for days in WINDOWS
        ]
        answers = await asyncio.gather(*asked)
        rows = []
        for index, group in enumerate(groups):
            windows = answers[index * len(WINDOWS) : (index + 1) * len(WINDOWS)]
            if windows[0].sent:
                note = ", ".join(f"{w.sent:,} sent in {d} d" for w, d in zip(windows, WINDOWS, strict=True))
                rows.append(BarRow(group, [w.response_rate for w in windows], f"({note})"))
        self._charts[grouping] = (now, self.live.stream_seq, rows)
        return rows

    async def member(self, member_id: str) -> dict[str, Any]:
        """A member's balance, ledger, inbox counts, latest InMails, scheduled sends, sending and
        enforcement."""
        balance, ledger, sent, enforcement, received, scheduled, *counts = await asyncio.gather(
            self._ask(CreditBalance(member_id=member_id), CreditBalanceData),
            self._ask(CreditLedger(member_id=member_id, limit=200), LedgerPage),
            self._ask(ResponseStats(sender_id=member_id), ResponseStatsData),
            self._enforcement(member_id),
            self._ask(Inbox(member_id=member_id, box="received", limit=10), InboxPage),
            self._ask(Inbox(member_id=member_id, box="scheduled", limit=50), InboxPage),
            *(
                self._ask(Inbox(member_id=member_id, box="received", status=status, limit=200), InboxPage)
                for status in get_args(InMailStatus)
            ),
        )
        return {
            "member_id": member_id,
            "balance": balance,
            "ledger": ledger.entries,
            "sent": sent,
            "received": {
                status: f"{RECEIVED_COUNTED}+" if page.next else len(page.items)
                for status, page in zip(get_args(InMailStatus), counts, strict=True)
            },
            "latest_received": received.items,
            "scheduled": [item for item in scheduled.items if item.status == "scheduled"],
            "enforcement": enforcement,
        }

    async def balance_points(self, member_id: str) -> list[tuple[datetime, float]]:
        """The member's balance after each credit movement, oldest first (the latest 200)."""
        ledger = await self._ask(CreditLedger(member_id=member_id, limit=200), LedgerPage)
        return [(entry.occurred_at, float(entry.balance_after)) for entry in reversed(ledger.entries)]

    def _groups(self, grouping: Grouping) -> Sequence[str]:
        if grouping == "tier":
            return get_args(Tier)
        if grouping == "kind":
            return get_args(InMailKind)
        return self.live.top_templates(TEMPLATES_SHOWN)

    async def _enforcement(self, member_id: str) -> dict[str, Any] | None:
        # Shown only where the service answers it: a service without enforcement has no subscriber.
        try:
            return await self._request("EnforcementStatus", {"member_id": member_id}, dict[str, Any])
        except (Unavailable, Refused):
            return None

    async def _ask(self, query: msgspec.Struct, answer: type[T]) -> T:
        return await self._request(type(query).__name__, query, answer)

    async def _request(self, name: str, query: object, answer: type[T]) -> T:
        subject = subjects.query(name)
        try:
            reply = await self.nc.request(subject, msgspec.json.encode(query), timeout=REQUEST_TIMEOUT)
        except Exception as exc:
            raise Unavailable(f"no answer on {subject}: {type(exc).__name__}") from exc
        envelope = msgspec.json.decode(reply.data, type=_Envelope)
        if envelope.error is not None or not envelope.ok:
            error = envelope.error or _Error("UNAVAILABLE", "no error given")
            raise Refused(error.code, error.message)
        return msgspec.json.decode(envelope.data, type=answer)


def _stats_query(grouping: Grouping, group: str, since: datetime) -> ResponseStats:
    if grouping == "tier":
        return ResponseStats(tier=group, since=since)  # type: ignore[arg-type]
    if grouping == "kind":
        return ResponseStats(kind=group, since=since)  # type: ignore[arg-type]
    return ResponseStats(template_id=group, since=since)


def command_totals(metrics: Metrics) -> dict[str, Any]:
    """Commands answered so far: ``ok``, ``refused``, and ``errors`` by code."""
    codes: dict[str, float] = {}
    for (_, outcome), count in metrics.command_counts().items():
        codes[outcome] = codes.get(outcome, 0.0) + count
    ok = codes.pop("ok", 0.0)
    return {"ok": ok, "refused": sum(codes.values()), "errors": dict(sorted(codes.items()))}


class CommandRates:
    """Commands per second over the last minutes, from samples of the metrics' counts."""

    def __init__(self) -> None:
        self.samples: deque[tuple[datetime, float, float]] = deque(maxlen=SAMPLES_KEPT)
        """(when, answered ok so far, refused so far)."""

    def sample(self, metrics: Metrics) -> None:
        """Take the counts as they are now."""
        totals = command_totals(metrics)
        self.samples.append((datetime.now(UTC), totals["ok"], totals["refused"]))

    def per_second(self) -> dict[str, list[tuple[datetime, float]]]:
        """Answered and refused commands per second between consecutive samples."""
        series: dict[str, list[tuple[datetime, float]]] = {"ok/s": [], "refused/s": []}
        for (t0, ok0, bad0), (t1, ok1, bad1) in zip(self.samples, list(self.samples)[1:], strict=False):
            seconds = (t1 - t0).total_seconds() or 1.0
            series["ok/s"].append((t1, (ok1 - ok0) / seconds))
            series["refused/s"].append((t1, (bad1 - bad0) / seconds))
        return series if series["ok/s"] else {}
