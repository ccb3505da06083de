"""Metrics, tracing and JSON logs around the command executor, on the in-memory store."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator

import msgspec
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from contracts import subjects
from eventstore import InMemoryEventStore, StoredMessage
from inmail.observability.logs import JsonFormatter, configure_logging, current_command_id, json_line
from inmail.observability.metrics import Metrics, ScrapeState
from inmail.observability.observed_commands import ObservedCommands
from inmail.observability.tracing import Tracing, TracingConfigError, tracer_provider_from_env
from services.executor import CommandExecutor, CommandSettings
from services.repository import MemberRepository
from tests.unit.scenario import T0, InMemoryContacts, register, send

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

CONTRACT_SERIES = {
    "inmail_commands": ("counter", {"command", "outcome"}),
    "inmail_command_duration_seconds": ("histogram", {"command"}),
    "inmail_events_appended": ("counter", {"type"}),
    "inmail_projection_position": ("gauge", {"projection"}),
    "inmail_projection_lag_events": ("gauge", {"projection"}),
    "inmail_quarantined_events": ("gauge", set()),
    "inmail_nats_reconnects": ("counter", set()),
    "inmail_scheduled_pending": ("gauge", set()),
}


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(spans: InMemorySpanExporter) -> Iterator[Tracing]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing = Tracing(provider)
    yield tracing
    tracing.shutdown()


def observed(store: InMemoryEventStore, metrics: Metrics | None, tracing: Tracing | None) -> ObservedCommands:
    repository = MemberRepository(
        store,
        message_headers=tracing.message_headers if tracing else None,
        on_appended=metrics.events_appended if metrics else None,
    )
    executor = CommandExecutor(
        repository, InMemoryContacts(), CommandSettings(trust_client_time=True), clock=lambda: T0
    )
    return ObservedCommands(executor, metrics, tracing)


def families(metrics: Metrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Series name -> labels -> value, as Prometheus would scrape them."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_every_answered_command_is_counted_and_timed_by_outcome() -> None:
    metrics = Metrics()
    commands = observed(InMemoryEventStore(), metrics, None)
    await commands.handle("RegisterMember", msgspec.json.encode(register("alice")), None)
    await commands.handle("RegisterMember", msgspec.json.encode(register("alice", command_id="again")), None)
    await commands.handle("RegisterMember", b"not json", None)
    await commands.handle("NoSuchCommand", b"{}", None)
    counted = families(metrics)
    assert counted["inmail_commands_total"] == {
        (("command", "RegisterMember"), ("outcome", "ok")): 1.0,
        (("command", "RegisterMember"), ("outcome", "MEMBER_EXISTS")): 1.0,
        (("command", "RegisterMember"), ("outcome", "INVALID_COMMAND")): 1.0,
        (("command", "unknown"), ("outcome", "INVALID_COMMAND")): 1.0,
    }
    assert counted["inmail_command_duration_seconds_count"][(("command", "RegisterMember"),)] == 3.0
    assert counted["inmail_events_appended_total"] == {(("type", "MemberRegistered"),): 1.0}


def test_the_exposition_has_the_contract_series_with_their_labels_and_types() -> None:
    metrics = Metrics()
    metrics.command_answered("SendInMail", "ok", 0.002)
    metrics.state = ScrapeState(positions={"inbox": 5, "credits": 7}, stream_seq=7, nats_reconnects=2)
    kinds = {family.name: family for family in text_string_to_metric_families(metrics.exposition().decode())}
    ours = {name for name in kinds if name.startswith("inmail_")}
    assert ours == set(CONTRACT_SERIES)
    for name, (kind, labels) in CONTRACT_SERIES.items():
        assert kinds[name].type == kind, name
        for sample in kinds[name].samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)
    assert any(name.startswith("process_") for name in kinds)
    counted = families(metrics)
    assert counted["inmail_projection_lag_events"] == {
        (("projection", "credits"),): 0.0,
        (("projection", "inbox"),): 2.0,
    }
    assert counted["inmail_nats_reconnects_total"] == {(): 2.0}


def test_lag_is_left_out_when_the_stream_cannot_be_asked() -> None:
    metrics = Metrics()
    metrics.state = ScrapeState(positions={"inbox": 5}, stream_seq=None)
    counted = families(metrics)
    assert counted["inmail_projection_position"] == {(("projection", "inbox"),): 5.0}
    assert "inmail_projection_lag_events" not in counted


async def test_a_command_continues_the_requests_trace_and_its_events_carry_it(
    tracing: Tracing, spans: InMemorySpanExporter
) -> None:
    store = InMemoryEventStore()
    commands = observed(store, None, tracing)
    await commands.handle("RegisterMember", msgspec.json.encode(register("alice", tier="recruiter")), None)
    await commands.handle("RegisterMember", msgspec.json.encode(register("bob", open_profile=True)), None)
    reply = await commands.handle(
        "SendInMail", msgspec.json.encode(send("alice", "bob")), {"traceparent": TRACEPARENT}
    )
    assert json.loads(reply)["ok"] is True
    handled = [span for span in spans.get_finished_spans() if span.name == "SendInMail"]
    assert len(handled) == 1
    span = handled[0]
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.attributes is not None and span.attributes["inmail.outcome"] == "ok"
    assert span.attributes["messaging.destination.name"] == subjects.command("SendInMail")
    stored = await store.read_subject(subjects.member_events("alice"))
    carried = stored[-1].headers["traceparent"]
    assert carried.split("-")[1] == TRACE_ID
    assert carried.split("-")[2] == format(span.context.span_id, "016x")


def test_projection_spans_join_the_trace_stored_with_the_events(
    tracing: Tracing, spans: InMemorySpanExporter
) -> None:
    messages = [
        StoredMessage(1, "inmail.evt.member.a", b"{}", {"traceparent": TRACEPARENT}),
        StoredMessage(2, "inmail.evt.member.a", b"{}", {"traceparent": TRACEPARENT}),
        StoredMessage(3, "inmail.evt.member.b", b"{}", {}),
    ]
    tracing.projection_applied("inbox", messages, 1_000, 2_000)
    [span] = spans.get_finished_spans()
    assert span.name == "apply inbox"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert span.attributes is not None
    assert (span.attributes["inmail.first_seq"], span.attributes["inmail.last_seq"]) == (1, 2)
    assert (span.start_time, span.end_time) == (1_000, 2_000)


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., TracerProvider | None]:
    """``tracer_provider_from_env`` with exactly the given ``OTEL_*`` variables set."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)

    def provider(**variables: str) -> TracerProvider | None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return tracer_provider_from_env()

    return provider


def test_tracing_is_off_unless_an_exporter_or_endpoint_is_set(
    otel_env: Callable[..., TracerProvider | None],
) -> None:
    assert otel_env() is None
    assert otel_env(OTEL_SERVICE_NAME="inmail") is None
    assert otel_env(OTEL_TRACES_EXPORTER="none") is None
    assert otel_env(OTEL_TRACES_EXPORTER="console", OTEL_SDK_DISABLED="true") is None


def test_tracing_follows_the_standard_variables(otel_env: Callable[..., TracerProvider | None]) -> None:
    otlp = otel_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert otlp is not None
    assert otlp.resource.attributes["service.name"] == "inmail-broker"
    otlp.shutdown()
    console = otel_env(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="mail-a")
    assert console is not None
    assert console.resource.attributes["service.name"] == "mail-a"
    console.shutdown()


def test_an_exporter_this_installation_lacks_is_refused(
    otel_env: Callable[..., TracerProvider | None],
) -> None:
    with pytest.raises(TracingConfigError, match="zipkin"):
        otel_env(OTEL_TRACES_EXPORTER="zipkin")
    with pytest.raises(TracingConfigError, match="grpc"):
        otel_env(OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("inmail.test", logging.WARNING, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


def test_a_json_log_line_has_level_time_and_message() -> None:
    line = json.loads(JsonFormatter().format(_record("stream moved")))
    assert (line["level"], line["message"], line["logger"]) == ("warning", "stream moved", "inmail.test")
    assert line["time"].endswith("Z") and "T" in line["time"]
    assert not {"command_id", "seq", "trace_id"} & set(line)


def test_a_json_log_line_names_the_command_the_sequence_and_the_trace(tracing: Tracing) -> None:
    token = current_command_id.set("c-42")
    try:
        with tracing.tracer.start_as_current_span("SendInMail") as span:
            line = json.loads(JsonFormatter().format(_record("answered", seq=17)))
    finally:
        current_command_id.reset(token)
    assert line["command_id"] == "c-42"
    assert line["seq"] == 17
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")


def test_an_exception_stays_on_one_json_line() -> None:
    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    text = JsonFormatter().format(record)
    assert "\n" not in text
    assert "ValueError: broken" in json.loads(text)["exception"]
    assert json.loads(json_line("error", "inmail: no"))["level"] == "error"


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The root logger's handlers and level as they were before the test (pytest's own among them)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_the_default_format_stays_human_readable(
    capsys: pytest.CaptureFixture[str], root_logging: None
) -> None:
    configure_logging("info")
    logging.getLogger("inmail.test").info("plain words")
    assert "INFO inmail.test: plain words" in capsys.readouterr().err
    configure_logging("info", "json")
    logging.getLogger("inmail.test").info("plain words")
    assert json.loads(capsys.readouterr().err)["message"] == "plain words"
