"""OpenTelemetry tracing, configured by the SDK's standard ``OTEL_*`` variables alone.

Off unless ``OTEL_TRACES_EXPORTER`` names an exporter or an OTLP endpoint is set
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``); then the
SDK reads the rest itself: ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``
(the resource), ``OTEL_TRACES_SAMPLER`` (the sampler), ``OTEL_BSP_*`` (batching),
``OTEL_EXPORTER_OTLP_*`` (where and how to export), ``OTEL_PROPAGATORS``. When off,
nothing of this module runs per command.

A command's trace context arrives in the request's NATS headers (W3C
``traceparent``), continues in the span that handles it, is written into the
headers of every event the command appended, and each projection that applies
those events records a span of the same trace.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import propagate
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Link, Span, SpanKind, get_current_span

from eventstore import StoredMessage

DEFAULT_SERVICE_NAME = "inmail-broker"
OTLP_PROTOCOL = "http/protobuf"
"""The OTLP exporter installed with the package (``opentelemetry-exporter-otlp-proto-http``)."""


class TracingConfigError(ValueError):
    """The ``OTEL_*`` variables ask for something this installation cannot do."""


def tracer_provider_from_env(*, one_line: bool = False) -> TracerProvider | None:
    """A tracer provider as the ``OTEL_*`` variables describe it; None when tracing is off.

    ``one_line`` makes the console exporter print each span on one line (for JSON logs).
    """
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = [name.strip() for name in env.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()]
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not names and endpoint:
        names = ["otlp"]
    names = [name for name in names if name != "none"]
    if not names:
        return None
    exporters = [_exporter(name, env, one_line) for name in names]
    named = "OTEL_SERVICE_NAME" in env or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    provider = TracerProvider(resource=Resource.create({} if named else {SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _exporter(name: str, env: Mapping[str, str], one_line: bool) -> SpanExporter:
    if name == "console":
        if one_line:
            return ConsoleSpanExporter(formatter=lambda span: span.to_json(indent=None) + "\n")
        return ConsoleSpanExporter()
    if name in ("otlp", "otlp_proto_http"):
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if protocol not in (None, "", OTLP_PROTOCOL):
            raise TracingConfigError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: only {OTLP_PROTOCOL} is installed"
            )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise TracingConfigError(f"OTEL_TRACES_EXPORTER names {name!r}; this installation has console and otlp")


class Tracing:
    """The spans of the service: handling a command, and each projection applying its events."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("inmail")

    @contextmanager
    def command_span(self, name: str, subject: str, headers: Mapping[str, str] | None) -> Iterator[Span]:
        """The span of handling one command, continuing the request's trace when it has one."""
        parent = propagate.extract(headers) if headers else None
        with self.tracer.start_as_current_span(
            name,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"messaging.system": "nats", "messaging.destination.name": subject},
        ) as span:
            yield span

    def message_headers(self) -> dict[str, str] | None:
        """The current trace context as message headers (``traceparent``), for the events appended now."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier or None

    def projection_applied(
        self, projection: str, messages: Sequence[StoredMessage], start_ns: int, end_ns: int
    ) -> None:
        """A span per trace among the events one projection applied in one batch, in that trace.

        A batch holds events of many commands; each command's trace gets its own span of the
        batch's time, parented by (and linked to) the context stored with its events.
        """
        by_trace: dict[str, list[StoredMessage]] = {}
        for message in messages:
            traceparent = message.headers.get("traceparent")
            if traceparent:
                by_trace.setdefault(traceparent, []).append(message)
        for carrier_messages in by_trace.values():
            parent = propagate.extract(carrier_messages[0].headers)
            link = Link(get_current_span(parent).get_span_context())
            span = self.tracer.start_span(
                f"apply {projection}",
                context=parent,
                kind=SpanKind.CONSUMER,
                links=[link],
                start_time=start_ns,
                attributes={
                    "messaging.system": "nats",
                    "inmail.projection": projection,
                    "inmail.first_seq": carrier_messages[0].seq,
                    "inmail.last_seq": carrier_messages[-1].seq,
                    "inmail.events": len(carrier_messages),
                },
            )
            span.end(end_time=end_ns)

    def shutdown(self) -> None:
        """Export what is still buffered, then stop."""
        self.provider.shutdown()
