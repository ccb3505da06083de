"""``/healthz``, ``/readyz``, ``/metrics`` and the dashboard's routes, on a real service over real NATS."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from inmail.app import InMailService
from inmail.http.server import HttpPortTaken, bind
from inmail.natsserver import EmbeddedNatsServer
from projections.catalogue import CATALOGUE
from tests.integration.http_env import http_client, http_surface
from tests.integration.service_env import Client, client_for, running_service, settings_for
from tests.serve_process import run


@pytest.fixture
async def service(own_nats_server: EmbeddedNatsServer, tmp_path: Path) -> AsyncIterator[InMailService]:
    async with running_service(settings_for(own_nats_server, tmp_path)) as svc:
        yield svc


@pytest.fixture
async def site(service: InMailService) -> AsyncIterator[httpx.AsyncClient]:
    async with http_surface(service) as (_, base_url), http_client(base_url) as http:
        yield http


@pytest.fixture
async def client(own_nats_server: EmbeddedNatsServer, service: InMailService) -> AsyncIterator[Client]:
    async with client_for(own_nats_server) as c:
        yield c


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"{what} within {within:g}s"
        await asyncio.sleep(0.1)


async def scrape(site: httpx.AsyncClient) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = await site.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def sent_inmail(client: Client) -> tuple[str, str, int]:
    """A recruiter, a connection of theirs, and an InMail between them: (sender, recipient, seq)."""
    sender = await client.register("recruiter")
    recipient = await client.register("free")
    await client.ok("ConnectMembers", member_id=sender, other_member_id=recipient)
    reply = await client.ok(
        "SendInMail", sender_id=sender, recipient_id=recipient, subject="A role", body="Hi"
    )
    return sender, recipient, reply["seq"]


async def test_healthz_and_readyz_answer_200_on_a_running_service(site: httpx.AsyncClient) -> None:
    assert (await site.get("/healthz")).json() == {"status": "alive"}
    ready = await site.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


async def test_readyz_is_503_with_a_reason_until_nats_is_connected(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    async with http_surface(None) as (surface, base_url), http_client(base_url) as site:
        assert (await site.get("/healthz")).status_code == 200
        waiting = await site.get("/readyz")
        assert waiting.status_code == 503 and "NATS not connected" in waiting.json()["reasons"][0]
        surface.service = InMailService(settings_for(own_nats_server, tmp_path))
        unstarted = await site.get("/readyz")
        assert unstarted.status_code == 503
        assert own_nats_server.url in unstarted.json()["reasons"][0]


async def test_readyz_goes_503_when_the_projections_stop_and_200_after(
    site: httpx.AsyncClient, service: InMailService, client: Client
) -> None:
    assert service.projections is not None
    await service.projections.stop()
    await sent_inmail(client)
    await asyncio.sleep(1.2)  # the oldest unapplied event is now more than a second old
    behind = await site.get("/readyz")
    assert behind.status_code == 503, behind.text
    reasons = behind.json()["reasons"]
    assert {reason.split()[1] for reason in reasons} == set(CATALOGUE)
    assert all("behind the stream" in reason for reason in reasons)
    await service.projections.start()

    async def ready() -> bool:
        return (await site.get("/readyz")).status_code == 200

    await eventually(ready, 15, "ready again once the projections caught up")


async def test_a_service_without_projections_is_ready_with_nats_alone(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    settings = settings_for(own_nats_server, tmp_path, projections=False)
    async with (
        running_service(settings) as service,
        http_surface(service) as (_, base_url),
        http_client(base_url) as site,
    ):
        assert (await site.get("/readyz")).status_code == 200
        assert "inmail_projection_position" not in await scrape(site)


async def test_metrics_count_commands_and_events_and_lag_goes_to_0(
    site: httpx.AsyncClient, service: InMailService, client: Client
) -> None:
    before = await scrape(site)
    assert "inmail_commands_total" not in before  # the start-up probe is no client's command
    _, _, seq = await sent_inmail(client)
    refused = await client.command(
        "SendInMail", sender_id="nobody", recipient_id="none", subject="s", body="b"
    )
    assert refused["error"]["code"] == "UNKNOWN_MEMBER"
    after = await scrape(site)
    commands = after["inmail_commands_total"]
    assert commands[(("command", "RegisterMember"), ("outcome", "ok"))] == 2.0
    assert commands[(("command", "SendInMail"), ("outcome", "ok"))] == 1.0
    assert commands[(("command", "SendInMail"), ("outcome", "UNKNOWN_MEMBER"))] == 1.0
    assert after["inmail_command_duration_seconds_count"][(("command", "SendInMail"),)] == 2.0
    appended = after["inmail_events_appended_total"]
    assert appended[(("type", "InMailSent"),)] == 1.0
    assert appended[(("type", "MemberRegistered"),)] == 2.0
    assert after["inmail_quarantined_events"] == {(): 0.0}
    assert after["inmail_nats_reconnects_total"] == {(): 0.0}
    assert after["inmail_scheduled_pending"] == {(): 0.0}

    async def caught_up() -> bool:
        now = await scrape(site)
        positions = now["inmail_projection_position"]
        lags = now["inmail_projection_lag_events"]
        at_end = all(v == seq for v in positions.values())
        return len(positions) == len(CATALOGUE) and at_end and set(lags.values()) == {0}

    await eventually(caught_up, 10, "every projection at the stream's end, lag 0")


async def test_the_dashboard_pages_and_their_assets_are_served(site: httpx.AsyncClient) -> None:
    for path in ("/", "/members/alice"):
        page = await site.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for asset in ("/static/dashboard.css", "/static/common.js", "/static/favicon.svg"):
            assert asset in page.text
            assert (await site.get(asset)).status_code == 200
    assert (await site.get("/members/not%20an%20id")).status_code == 404
    assert (await site.get("/nothing-here")).status_code == 404


async def test_the_dashboards_figures_come_from_the_queries(site: httpx.AsyncClient, client: Client) -> None:
    sender, recipient, seq = await sent_inmail(client)
    await client.query("Inbox", member_id=recipient, box="received", min_seq=seq)
    overview = (await site.get("/api/overview")).json()
    assert overview["role"] == "all" and overview["stream_seq"] >= seq
    assert {p["name"] for p in overview["projections"]} == set(CATALOGUE)
    assert overview["commands"]["ok"] >= 4
    member = (await site.get(f"/api/members/{sender}")).json()
    balance = await client.query("CreditBalance", member_id=sender)
    assert member["balance"]["balance"] == balance["data"]["balance"]
    assert [e["balance_after"] for e in member["ledger"]] == [balance["data"]["balance"]]
    assert member["sent"]["sent"] == 1 and member["enforcement"]["stage"] == "ok"
    received = (await site.get(f"/api/members/{recipient}")).json()
    assert received["received"]["sent"] == 1
    assert [item["subject"] for item in received["latest_received"]] == ["A role"]
    assert member["scheduled"] == []
    unknown = await site.get("/api/members/nobody_at_all")
    assert unknown.status_code == 404 and unknown.json()["code"] == "UNKNOWN_MEMBER"


async def test_the_dashboard_shows_an_erased_members_texts_as_erased_and_keeps_the_numbers(
    site: httpx.AsyncClient, client: Client
) -> None:
    sender, recipient, seq = await sent_inmail(client)
    await client.query("Inbox", member_id=recipient, box="received", min_seq=seq)
    before = (await site.get(f"/api/members/{recipient}")).json()
    shown = [(i["subject"], i["sender_name"]) for i in before["latest_received"]]
    assert shown == [("A role", f"Member {sender}")]
    erased = await client.ok("EraseMember", member_id=sender)
    await client.query("Inbox", member_id=recipient, box="received", min_seq=erased["seq"])
    after = (await site.get(f"/api/members/{recipient}")).json()
    assert [(i["subject"], i["sender_name"]) for i in after["latest_received"]] == [("[erased]", "[erased]")]
    assert after["received"] == before["received"]
    page = json.dumps(after) + (await site.get(f"/api/members/{sender}")).text
    assert "A role" not in page


async def test_a_member_page_lists_the_scheduled_sends_until_they_go_out(
    site: httpx.AsyncClient, client: Client
) -> None:
    sender, recipient, seq = await sent_inmail(client)
    # Due three days after the latest event of both: whatever the day the test runs.
    sent = await client.query("Inbox", member_id=sender, box="sent", min_seq=seq)
    last = sent["data"]["items"][0]["sent_at"]
    due = datetime.fromisoformat(last) + timedelta(days=3)
    scheduled = await client.ok(
        "SendInMail", sender_id=sender, recipient_id=recipient, subject="Later", body="Hi",
        occurred_at=last, send_at=due.isoformat(),
    )  # fmt: skip
    await client.query("Inbox", member_id=sender, box="scheduled", min_seq=scheduled["seq"])
    member = (await site.get(f"/api/members/{sender}")).json()
    [item] = member["scheduled"]
    assert item["subject"] == "Later" and datetime.fromisoformat(item["scheduled_for"]) == due


async def test_the_charts_draw_what_the_stream_holds(site: httpx.AsyncClient, client: Client) -> None:
    sender, _, seq = await sent_inmail(client)
    await client.query("ResponseStats", min_seq=seq)
    tiers = await site.get("/api/charts/rates-tier.svg")
    assert tiers.headers["content-type"].startswith("image/svg+xml")
    assert ">recruiter<" in tiers.text and 'data-value="0"' in tiers.text
    assert "recruiter_outreach" in (await site.get("/api/charts/rates-kind.svg")).text
    balance = await site.get(f"/api/members/{sender}/balance.svg")
    assert 'data-points="1"' in balance.text
    assert (await site.get("/api/charts/errors.svg")).status_code == 200
    assert (await site.get("/api/charts/commands.svg")).status_code == 200
    assert (await site.get("/api/charts/rates-planet.svg")).status_code == 404


async def test_live_updates_name_the_new_sequence_and_the_members_it_touched(
    site: httpx.AsyncClient, client: Client
) -> None:
    sender = await client.register("recruiter")
    recipient = await client.register("premium_career", open_profile=True)
    async with site.stream("GET", "/api/events") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        lines = events.aiter_lines()
        first = json.loads((await anext(lines)).removeprefix("data: "))
        reply = await client.ok("SendInMail", sender_id=sender, recipient_id=recipient, subject="S", body="B")

        async def update() -> dict[str, Any]:
            async for line in lines:
                if line.startswith("data: "):
                    data: dict[str, Any] = json.loads(line.removeprefix("data: "))
                    if data["members"] and recipient in data["members"]:
                        return data
            raise AssertionError("the stream ended")

        later = await asyncio.wait_for(update(), 10)
    assert later["stream_seq"] == reply["seq"] > first["stream_seq"]
    assert sender in later["members"]


def test_a_taken_http_port_is_one_line_naming_it(tmp_path: Path) -> None:
    with bind("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        taken.listen()
        with pytest.raises(HttpPortTaken, match=f"127.0.0.1:{port}"):
            bind("127.0.0.1", port)
        result = run("serve", "--data-dir", str(tmp_path), "--http-port", str(port), timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f":{port}" in lines[0] and "--http-port" in lines[0], result.stderr


async def test_a_nats_restart_counts_a_reconnect(
    own_nats_server: EmbeddedNatsServer, site: httpx.AsyncClient, service: InMailService
) -> None:
    await asyncio.to_thread(own_nats_server.restart)

    async def reconnected() -> bool:
        return (await scrape(site))["inmail_nats_reconnects_total"] == {(): 1.0}

    await eventually(reconnected, 20, "one reconnect counted")
