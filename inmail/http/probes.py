"""What the probes and the metrics endpoint ask of the running service.

Ready means: connected to NATS, the service's handlers started, and every
projection within ``MAX_BEHIND`` of the stream: no event stored longer ago than
that is still waiting to be applied. A projection behind the stream is judged by
the JetStream store time of the first event it has not applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from eventstore import StoredMessage
from inmail.app import InMailService
from inmail.observability.metrics import ScrapeState

MAX_BEHIND = 1.0
"""Seconds an event may wait to be applied before the service is no longer ready."""


@dataclass(frozen=True, slots=True)
class Readiness:
    """Ready or not, and why not."""

    reasons: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.reasons


async def readiness(service: InMailService) -> Readiness:
    """Whether the service can take its share of traffic now; every reason it cannot."""
    nc = service.nc
    if nc is None or not nc.is_connected:
        return Readiness([f"NATS not connected ({service.settings.nats_url})"])
    settings = service.settings
    if (settings.commands and service.commands is None) or (settings.projections and service.broker is None):
        return Readiness(["starting: the request handlers are not subscribed yet"])
    projections, events = service.projections, service.events
    if projections is None or events is None:
        return Readiness()
    reasons = [f"projection {name} stopped: {problem}" for name, problem in projections.problems().items()]
    try:
        last = await events.last_seq()
    except Exception as exc:
        return Readiness([*reasons, f"the event stream is out of reach ({type(exc).__name__})"])
    now = datetime.now(UTC)
    for name, position in projections.positions().items():
        if position > last:
            reasons.append(
                f"projection {name} is ahead of the stream (at {position}, stream at {last}): "
                "the stream was replaced"
            )
        elif position < last:
            waiting = await events.read_range(position + 1, limit=1)
            stored = stored_at(waiting[0]) if waiting else None
            age = (now - stored).total_seconds() if stored is not None else None
            if age is None or age > MAX_BEHIND:
                since = f"; the oldest unapplied event waits for {age:.1f} s" if age is not None else ""
                reasons.append(f"projection {name} is {last - position} events behind the stream{since}")
    return Readiness(reasons)


async def scrape_state(service: InMailService) -> ScrapeState:
    """The values the metrics report as they are now."""
    state = ScrapeState()
    if service.projections is not None:
        state.positions = service.projections.positions()
    if service.events is not None:
        try:
            state.stream_seq = await service.events.last_seq()
        except Exception:
            state.stream_seq = None  # reported as no lag rather than a wrong one
    if service.projections is not None:
        try:
            state.quarantined = len(await service.projections.quarantined())
        except Exception:
            state.quarantined = 0  # the read-model store hiccuped; the next scrape tells
    if service.due is not None:
        state.scheduled_pending = service.due.pending()
    if service.nc is not None:
        state.nats_reconnects = int(service.nc.stats["reconnects"])
    return state


def stored_at(message: StoredMessage) -> datetime | None:
    """When JetStream stored a message (``Nats-Time-Stamp``, RFC 3339 with nanoseconds)."""
    stamp = message.headers.get("Nats-Time-Stamp")
    if not stamp:
        return None
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    try:
        moment = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    except ValueError:
        return None
    micros = int((fraction + "000000")[:6]) if fraction.isdigit() else 0
    return moment.replace(microsecond=micros)
