"""The service's Prometheus metrics: the series of the contract (section 12), and the process's.

Every series lives in a registry of the ``Metrics`` object, not the library's global one,
so that several services in one process (tests) each count their own. Recording on
the hot path uses label children cached per label value: ``labels()`` costs several
times more than the increment it leads to.

Values that exist elsewhere already (projection positions, the stream's last sequence,
NATS reconnects) are read when Prometheus scrapes, not mirrored on every change:
``refresh`` takes them, and the collector reports what it took.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from contracts.events import Event

DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: a command takes about a millisecond, and up to the event store's 5 s deadline."""

UNKNOWN_COMMAND = "unknown"
"""The ``command`` label of a request on a subject that names no command: the names clients
make up must not become label values (each one would be a series of its own)."""


@dataclass(slots=True)
class ScrapeState:
    """What the service is at the moment of a scrape; positions are empty without projections."""

    positions: Mapping[str, int] = field(default_factory=dict)
    stream_seq: int | None = None
    """None when the stream could not be asked: then no lag is reported."""
    quarantined: int = 0
    nats_reconnects: int = 0
    scheduled_pending: int = 0


class Metrics:
    """Every series of the contract in a registry of its own, with the process's metrics."""

    def __init__(self) -> None:
        # Only the contract's series: no ``*_created`` companions (a process-wide switch).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self._commands = Counter(
            "inmail_commands_total",
            "Commands answered, by command and outcome (ok or the error code).",
            ["command", "outcome"],
            registry=self.registry,
        )
        self._durations = Histogram(
            "inmail_command_duration_seconds",
            "Time from a command's arrival to its answer, whatever the outcome.",
            ["command"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._appended = Counter(
            "inmail_events_appended_total",
            "Events appended to INMAIL_EVENTS by this process, by event type.",
            ["type"],
            registry=self.registry,
        )
        self.state = ScrapeState()
        self.registry.register(_StateCollector(self))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._command_children: dict[tuple[str, str], Callable[[], None]] = {}
        self._duration_children: dict[str, Callable[[float], None]] = {}
        self._type_children: dict[str, Callable[[], None]] = {}

    def command_answered(self, command: str, outcome: str, seconds: float) -> None:
        """Count one answered command and observe how long it took."""
        count = self._command_children.get((command, outcome))
        if count is None:
            count = self._command_children[(command, outcome)] = self._commands.labels(command, outcome).inc
        count()
        observe = self._duration_children.get(command)
        if observe is None:
            observe = self._duration_children[command] = self._durations.labels(command).observe
        observe(seconds)

    def events_appended(self, events: Sequence[Event]) -> None:
        """Count the events of one append, by type."""
        for event in events:
            name = type(event).__name__
            count = self._type_children.get(name)
            if count is None:
                count = self._type_children[name] = self._appended.labels(name).inc
            count()

    def command_counts(self) -> dict[tuple[str, str], float]:
        """(command, outcome) -> commands answered so far; for the dashboard's rates."""
        return {
            (sample.labels["command"], sample.labels["outcome"]): sample.value
            for metric in self._commands.collect()
            for sample in metric.samples
            if sample.name == "inmail_commands_total"
        }

    def exposition(self) -> bytes:
        """Every series in the Prometheus text format, with the state of the last ``refresh``."""
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """The series read at scrape time from ``Metrics.state``."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        state = self.metrics.state
        position = GaugeMetricFamily(
            "inmail_projection_position",
            "The last stream sequence each projection applied.",
            labels=["projection"],
        )
        lag = GaugeMetricFamily(
            "inmail_projection_lag_events",
            "Events of the stream each projection has not applied yet.",
            labels=["projection"],
        )
        for name, seq in sorted(state.positions.items()):
            position.add_metric([name], seq)
            # Unknown is left out rather than shown as 0: the stream out of reach, or behind.
            if state.stream_seq is not None and seq <= state.stream_seq:
                lag.add_metric([name], state.stream_seq - seq)
        yield position
        yield lag
        yield GaugeMetricFamily(
            "inmail_quarantined_events",
            "Events of the stream that could not be decoded and were set aside.",
            value=state.quarantined,
        )
        yield CounterMetricFamily(
            "inmail_nats_reconnects",
            "Times the service's NATS connection was re-established.",
            value=state.nats_reconnects,
        )
        yield GaugeMetricFamily(
            "inmail_scheduled_pending",
            "Due work (scheduled sends, follow-ups) not yet performed.",
            value=state.scheduled_pending,
        )
