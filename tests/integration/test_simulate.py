"""`inmail simulate` driving the whole service in-process on a real nats-server, over NATS."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from contracts import subjects
from inmail.app import InMailService
from inmail.natsserver import EmbeddedNatsServer
from inmail.ops.replay import replay
from inmail.ops.verify import differences
from inmail.simulator import EXPECTED_REFUSALS, SimulationError, SimulationOptions, Summary, simulate
from tests.conftest import secured_server
from tests.integration.clock import ShiftedClock, at_any_time
from tests.integration.service_env import client_for, delete_service_streams, running_service, settings_for

INMAIL = [sys.executable, "-m", "inmail.cli"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNatsServer]:
    # Not durable: these tests are about traffic, and fsync on every write only slows them.
    nats = secured_server(tmp_path_factory.mktemp("sim-nats"), durable=False)
    nats.start()
    yield nats
    nats.stop()


@pytest.fixture
async def service(server: EmbeddedNatsServer, tmp_path: Path) -> AsyncIterator[InMailService]:
    async with running_service(settings_for(server, tmp_path, trust_client_time=True)) as svc:
        yield svc
    await delete_service_streams(server)


@pytest.fixture
async def untrusting_service(
    server: EmbeddedNatsServer, tmp_path: Path, clock: ShiftedClock
) -> AsyncIterator[InMailService]:
    settings = settings_for(server, tmp_path, trust_client_time=False, clock=clock)
    async with running_service(settings) as svc:
        yield svc
    await delete_service_streams(server)


async def _stream_last_seq(server: EmbeddedNatsServer) -> int:
    async with client_for(server, "admin") as client:
        info = await client.nc.jetstream().stream_info(subjects.EVENTS_STREAM)
        return int(info.state.last_seq)


async def test_a_small_simulation_keeps_to_the_rules_and_writes_events(
    server: EmbeddedNatsServer, service: InMailService
) -> None:
    summary = await simulate(
        server.url,
        SimulationOptions(members=40, months=3, start="2025-01", seed=3),
        creds=server.creds("client"),
    )

    assert set(summary.refusals) <= EXPECTED_REFUSALS, summary.refusals
    for command in (
        "RegisterMember",
        "RefreshCredits",
        "ConnectMembers",
        "SendInMail",
        "SendBulkInMail",
        "MarkInMailRead",
        "AcknowledgeInMail",
        "RecordReply",
        "DeclineInMail",
        "RunDue",
    ):
        assert summary.commands.get(command, 0) > 0, command
    # The simulator plays the scheduler: members who joined earlier are refreshed as a month
    # begins (most members join on the first day, and there are two month starts after it).
    assert summary.commands["RefreshCredits"] >= 2 * 30
    # Refunds are events of their own, on top of one event per command that succeeded.
    assert summary.events_written > summary.commands_total - summary.refusals_total
    assert summary.last_seq == await _stream_last_seq(server)
    # Scheduled sends went out at their hour, automated follow-ups went or were called off,
    # and the floor sender fell under the floor: warned, then suspended (its bulk refused).
    assert summary.scheduled > 0 and summary.due["delivered"] > 0
    assert summary.automated_follow_ups > 0
    assert summary.due["follow_up_sent"] > 0 and summary.due["follow_up_cancelled"] > 0
    assert summary.due["warned"] >= 1 and summary.due["suspended"] >= 1
    assert summary.refusals["BULK_SUSPENDED"] > 0
    rendered = summary.render()
    assert f"Response-rate floor (sender {summary.floor_sender}): " in rendered
    assert f"Scheduled sends: {summary.scheduled:,} scheduled" in rendered
    assert await differences(server.url, creds=server.creds("operator")) == []


async def test_after_a_simulated_year_replay_and_verify_agree_with_the_events(
    server: EmbeddedNatsServer, service: InMailService
) -> None:
    options = SimulationOptions(members=12, months=12, start="2025-01", seed=8, activity=0.3)
    summary = await simulate(server.url, options, creds=server.creds("client"))
    assert summary.due["delivered"] > 0 and summary.due["warned"] > 0
    operator = server.creds("operator")
    assert await differences(server.url, creds=operator) == []
    assert await replay(server.url, progress=False, creds=operator) == 0
    assert await differences(server.url, creds=operator) == []


async def test_the_read_models_agree_with_what_the_simulation_did(
    server: EmbeddedNatsServer, service: InMailService
) -> None:
    summary = await simulate(
        server.url,
        SimulationOptions(members=40, months=2, start="2025-09", seed=5),
        creds=server.creds("client"),
    )

    async with client_for(server) as client:
        for template_id, count in summary.templates.items():
            answer = await client.query("ResponseStats", template_id=template_id, min_seq=summary.last_seq)
            assert answer["ok"] is True, answer
            stats = answer["data"]
            assert (stats["sent"], stats["responded"]) == (count.sent, count.responded), template_id


async def test_the_same_seed_gives_the_same_traffic_and_outcomes(
    server: EmbeddedNatsServer, service: InMailService
) -> None:
    def options(prefix: str, seed: int = 11) -> SimulationOptions:
        return SimulationOptions(members=40, months=2, start="2025-06", seed=seed, id_prefix=prefix)

    first = await simulate(server.url, options("first"), creds=server.creds("client"))
    # A connection of one's own, fewer requests in flight: replies interleave differently.
    async with client_for(server) as client:
        second = await simulate(client.nc, replace(options("second"), concurrency=7))
    other_seed = await simulate(server.url, options("third", seed=12), creds=server.creds("client"))

    assert first.counts() == second.counts()
    assert first.counts() != other_seed.counts()


async def test_response_rates_land_near_the_rates_users_quote(
    server: EmbeddedNatsServer, service: InMailService
) -> None:
    # A fixed start: the traffic a seed makes depends on the months' lengths, so a start
    # relative to today would test other traffic each month.
    options = SimulationOptions(members=150, months=4, start="2025-12", seed=2)
    summary: Summary = await simulate(server.url, options, creds=server.creds("client"))

    generic = summary.segment("generic")
    personalised = summary.segment("personalised")
    open_profile = summary.segment("open_profile")
    follow_up = summary.segment("follow_up")
    assert all(rate.judged for rate in summary.segments), summary.render()
    # The targets, widened for sampling noise and the responses still to come at the end.
    assert 0.03 <= generic.rate <= 0.12, summary.render()
    assert 0.13 <= personalised.rate <= 0.42, summary.render()
    assert 0.24 <= open_profile.rate <= 0.48, summary.render()
    assert generic.rate < personalised.rate < open_profile.rate, summary.render()
    assert follow_up.target_low - 0.04 <= follow_up.rate <= follow_up.target_high + 0.04, summary.render()


@at_any_time
async def test_a_service_that_ignores_client_time_is_refused_with_one_line(
    server: EmbeddedNatsServer, untrusting_service: InMailService
) -> None:
    # The simulations start a year before the simulator's clock, not the service's: their
    # probe must tell an untrusting service apart whether its clock is behind or ahead.
    before = await _stream_last_seq(server)
    with pytest.raises(SimulationError, match="--trust-client-time"):
        await simulate(server.url, SimulationOptions(members=10, months=1), creds=server.creds("client"))
    # A refusal writes nothing: the probe itself neither.
    assert await _stream_last_seq(server) == before

    process = await asyncio.create_subprocess_exec(
        *INMAIL,
        "simulate",
        "--nats",
        server.url,
        "--creds",
        str(server.creds("client")),
        "--members",
        "10",
        "--no-progress",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    lines = stderr.decode().strip().splitlines()
    assert process.returncode == 1 and not stdout
    assert len(lines) == 1 and "--trust-client-time" in lines[0], lines
    assert await _stream_last_seq(server) == before


async def test_simulate_help_exits_zero() -> None:
    process = await asyncio.create_subprocess_exec(
        *INMAIL, "simulate", "--help", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    for flag in ("--members", "--months", "--start", "--seed", "--concurrency", "--activity", "--id-prefix"):
        assert flag in stdout.decode()
