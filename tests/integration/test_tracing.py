"""A command's trace, from the request's ``traceparent`` to its events and every projection applying them."""

from __future__ import annotations

from pathlib import Path

import msgspec
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contracts import subjects
from inmail.natsserver import EmbeddedNatsServer
from tests.integration.service_env import client_for, new_id, running_service, settings_for

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


async def test_a_requests_trace_continues_in_the_command_its_events_and_every_projection(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    settings = settings_for(own_nats_server, tmp_path, tracer_provider=provider)
    async with running_service(settings) as service, client_for(own_nats_server) as client:
        sender = await client.register("recruiter")
        recipient = await client.register("premium_career")
        command = {
            "command_id": new_id("cmd"),
            "sender_id": sender,
            "recipient_id": recipient,
            "subject": "A role",
            "body": "Interested?",
        }
        reply = await client.nc.request(
            subjects.command("SendInMail"),
            msgspec.json.encode(command),
            timeout=10,
            headers={"traceparent": TRACEPARENT},
        )
        seq = msgspec.json.decode(reply.data)["seq"]
        for query, fields in (
            ("Inbox", {"member_id": recipient, "box": "received"}),
            ("CreditBalance", {"member_id": sender}),
            ("ResponseStats", {}),
        ):
            assert (await client.query(query, min_seq=seq, **fields))["ok"] is True
        assert service.events is not None
        stored = await service.events.get(seq)
        assert stored is not None and stored.headers["traceparent"].split("-")[1] == TRACE_ID
        assert service.projections is not None
        projections = set(service.projections.names)
    finished = spans.get_finished_spans()
    in_trace = [span for span in finished if format(span.context.trace_id, "032x") == TRACE_ID]
    names = {span.name for span in in_trace}
    assert "SendInMail" in names
    assert {f"apply {name}" for name in projections} <= names
    [handled] = [span for span in in_trace if span.name == "SendInMail"]
    assert handled.parent is not None and format(handled.parent.span_id, "016x") == "b7ad6b7169203331"
    for span in in_trace:
        if span.name.startswith("apply "):
            assert span.parent is not None and span.parent.span_id == handled.context.span_id
            assert span.attributes is not None and span.attributes["inmail.last_seq"] == seq
