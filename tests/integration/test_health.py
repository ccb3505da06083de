"""Health tells the truth about what the service needs: every stream and bucket, projections and lag."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from contracts import subjects
from inmail.natsserver import EmbeddedNatsServer
from inmail.ops.status import status
from inmail.streams import STORES as PRODUCT_STORES
from services.monthly_refresh import BUCKET
from tests.integration.service_env import client_for, running_service, settings_for

EVENTS = subjects.EVENTS_STREAM
STORES = {store.name: store.kind for store in PRODUCT_STORES}
"""Every stream and bucket of the product, as Health names them."""


async def test_health_lists_every_stream_and_bucket_with_its_replicas_and_each_projection_lag(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    server = own_nats_server
    url = server.url
    async with running_service(settings_for(server, tmp_path)), client_for(server, "admin") as client:
        registered = await client.ok(
            "RegisterMember", member_id="h_bob", display_name="Bob", email="b@e.io", tier="free"
        )
        seq = registered["seq"]
        health = (await client.query("Health", min_seq=seq))["data"]
        out = io.StringIO()
        code = await status(url, out=out, creds=server.creds("operator"))
    assert health["status"] == "ok" and health["problems"] == {}
    assert {name: d["kind"] for name, d in health["dependencies"].items()} == STORES
    for dependency in health["dependencies"].values():
        assert dependency["reachable"] is True
        replicas = (dependency["replicas"], dependency["replicas_wanted"], dependency["replicas_current"])
        assert replicas == (1, 1, 1)
        assert dependency["leader"] and dependency["problem"] is None
    assert health["dependencies"][subjects.EVENTS_STREAM]["last_seq"] == seq
    assert health["lag"] == dict.fromkeys(health["projections"], 0)
    assert code == 0
    text = out.getvalue()
    assert f"  bucket {BUCKET:<20} seq" in text and "replicas 1/1 current" in text


async def test_a_missing_stream_or_bucket_makes_health_degraded_and_status_exit_1(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    server = own_nats_server
    url = server.url
    async with running_service(settings_for(server, tmp_path)), client_for(server, "admin") as client:
        await client.register()
        js = client.nc.jetstream()
        await js.delete_key_value(BUCKET)
        await js.delete_stream(subjects.MEMBERS_STREAM)
        health = (await client.query("Health"))["data"]
        out = io.StringIO()
        code = await status(url, out=out, creds=server.creds("operator"))
    assert health["status"] == "degraded"
    assert set(health["problems"]) == {subjects.MEMBERS_STREAM, BUCKET}
    assert health["problems"][BUCKET] == f"missing: JetStream has no bucket {BUCKET}"
    assert health["dependencies"][subjects.MEMBERS_STREAM]["reachable"] is False
    assert code == 1
    assert "service: degraded" in out.getvalue()
    assert f"missing: JetStream has no stream {subjects.MEMBERS_STREAM}" in out.getvalue()


async def test_without_its_event_stream_no_projection_shows_lag_0(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    server = own_nats_server
    url = server.url
    async with running_service(settings_for(server, tmp_path)), client_for(server, "admin") as client:
        registered = await client.ok(
            "RegisterMember", member_id="h_carol", display_name="Carol", email="c@e.io", tier="free"
        )
        seq = registered["seq"]
        await client.query("Health", min_seq=seq)
        await client.nc.jetstream().delete_stream(subjects.EVENTS_STREAM)
        health = (await client.query("Health"))["data"]
        out = io.StringIO()
        code = await status(url, out=out, creds=server.creds("operator"))
    assert health["status"] == "degraded" and subjects.EVENTS_STREAM in health["problems"]
    assert health["lag"] == {}
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(
        f"stream {subjects.EVENTS_STREAM}: stream {subjects.EVENTS_STREAM} does not exist on the NATS server "
        f"at {url}"
    )
    assert code == 1
    projection_lines = [line for line in lines if " at seq " in line]
    assert projection_lines and all("lag unknown" in line for line in projection_lines)


async def test_an_existing_store_with_another_replica_count_is_reported_not_changed(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = own_nats_server
    async with running_service(settings_for(server, tmp_path / "first")):
        pass
    # The same stores, now asked for with 3 replicas (a single server cannot have them).
    again = settings_for(server, tmp_path / "second", replicas=3)
    with caplog.at_level(logging.WARNING, logger="inmail.service"):
        async with running_service(again), client_for(server, "admin") as client:
            health = (await client.query("Health"))["data"]
            js = client.nc.jetstream()
            configured = [(await js.stream_info(s)).config.num_replicas for s in (EVENTS, f"KV_{BUCKET}")]
    assert configured == [1, 1]
    assert health["status"] == "degraded"
    for name in STORES:
        assert "1 replica where --replicas asks for 3; left as it is" in health["problems"][name]
        assert health["dependencies"][name]["replicas_wanted"] == 3
    warnings = [r.getMessage() for r in caplog.records if "--replicas asks for 3" in r.getMessage()]
    assert sorted(w.split(":")[0] for w in warnings) == sorted(STORES)
