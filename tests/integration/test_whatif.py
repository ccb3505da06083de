"""`inmail whatif` on a simulated half-year in a real nats-server: the recorded policy changes
nothing, another one changes something, and nothing anywhere is written by it."""

from __future__ import annotations

import asyncio
import hashlib
import io
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from contracts import subjects
from contracts.events import InMailSent, ResponseRateAssessed, decode_event
from contracts.policy import POLICY_V1, decode_policy, encode_policy
from contracts.whatif import WhatIfReport
from inmail.natsserver import EmbeddedNatsServer
from inmail.ops.client import connected, events_store, stream_info
from inmail.ops.whatif import whatif
from inmail.simulator import SimulationOptions, simulate
from tests.conftest import secured_server
from tests.integration.service_env import client_for, running_service, settings_for

INMAIL = [sys.executable, "-m", "inmail.cli"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNatsServer]:
    nats = secured_server(tmp_path_factory.mktemp("whatif-nats"), durable=False)
    nats.start()
    yield nats
    nats.stop()


@pytest.fixture(scope="module")
def service_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("whatif-service")


@pytest.fixture(scope="module")
def half_year(server: EmbeddedNatsServer, service_dir: Path) -> None:
    """Six simulated months recorded by the whole service, which is then stopped: its read models
    stay on disk as it left them. (Once for the module, in an event loop of its own.)"""

    async def record() -> None:
        async with running_service(settings_for(server, service_dir, trust_client_time=True)):
            await simulate(
                server.url,
                SimulationOptions(members=60, months=6, start="2025-01", seed=7),
                creds=server.creds("client"),
            )

    asyncio.run(record())


async def _report(server: EmbeddedNatsServer, document: bytes) -> WhatIfReport:
    out = io.StringIO()
    rules = decode_policy(document)
    operator = server.creds("operator")
    assert await whatif(server.url, rules, as_json=True, progress=False, out=out, creds=operator) == 0
    return msgspec.json.decode(out.getvalue(), type=WhatIfReport)


@pytest.mark.usefixtures("half_year")
async def test_the_recorded_policy_reports_no_difference_over_a_simulated_half_year(
    server: EmbeddedNatsServer,
) -> None:
    report = await _report(server, encode_policy(POLICY_V1))
    assert report.members == []
    total = report.total
    for name in ("balance", "charged", "refunded", "forfeited", "refused"):
        assert getattr(total, name).recorded == getattr(total, name).whatif, name
    assert total.stage.recorded == total.stage.whatif
    # The half-year means something: credits were spent, refunded and forfeited; sends were
    # scheduled, followed up automatically and sent in bulk; stages moved and came back.
    assert total.charged.recorded > 100 and total.refunded.recorded > 10 and total.forfeited.recorded > 0
    kinds = await _recorded_kinds(server)
    for kind in ("InMailScheduled", "scheduled", "automated", "bulk", "warned", "suspended",
                 "BulkSuspensionEnded", "TierChanged", "FollowUpCancelled"):
        assert kinds[kind] > 0, kind


async def _recorded_kinds(server: EmbeddedNatsServer) -> Counter[str]:
    kinds: Counter[str] = Counter()
    async with connected(server.url, server.creds("operator")) as nc:
        last = (await stream_info(nc, subjects.EVENTS_STREAM)).state.last_seq
        async for message in events_store(nc, subjects.EVENTS_STREAM).follow(1, until=last):
            event = decode_event(message.data)
            kinds[type(event).__name__] += 1
            if isinstance(event, InMailSent):
                kinds.update(flag for flag in ("scheduled", "automated", "bulk") if getattr(event, flag))
            if isinstance(event, ResponseRateAssessed):
                kinds[event.stage] += 1
    return kinds


async def _everything_kept(server: EmbeddedNatsServer, service_dir: Path) -> dict[str, Any]:
    """Every stream's (and so every bucket's) sequence, count and size, and every file the service keeps."""
    kept: dict[str, Any] = {}
    async with client_for(server, "admin") as admin:
        for info in await admin.nc.jetstream().streams_info():
            s = info.state
            kept[f"stream {info.config.name}"] = (s.first_seq, s.last_seq, s.messages, s.bytes)
    return kept | _files_kept(service_dir)


def _files_kept(folder: Path) -> dict[str, str]:
    """Every file in the service's folder (read models, their WAL, its creds), by content."""
    return {
        f"file {path.relative_to(folder)}": hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


async def _inmail(*args: str) -> tuple[int, str, str]:
    """Run the `inmail` command line; its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        *INMAIL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.usefixtures("half_year")
async def test_inmail_whatif_reports_another_cap_and_writes_nothing_anywhere(
    server: EmbeddedNatsServer, service_dir: Path, tmp_path: Path
) -> None:
    tiers = dict(POLICY_V1.tiers)
    for tier in ("recruiter", "recruiter_lite", "sales_navigator"):
        tiers[tier] = msgspec.structs.replace(tiers[tier], cap=tiers[tier].monthly_allotment)
    document = tmp_path / "tight.json"
    document.write_bytes(encode_policy(msgspec.structs.replace(POLICY_V1, version=2, tiers=tiers)))
    before = await _everything_kept(server, service_dir)
    assert any(name.startswith("stream KV_") for name in before)
    assert any(name.startswith("file ") for name in before)

    login = ["--nats", server.url, "--creds", str(server.creds("operator"))]
    code, out, err = await _inmail("whatif", "--policy", str(document), "--json", *login)
    assert code == 0, err
    report = msgspec.json.decode(out, type=WhatIfReport)
    assert report.members, "a cap at the monthly allotment forfeits what members banked"
    assert all(m.forfeited.whatif >= m.forfeited.recorded for m in report.members)
    assert report.total.forfeited.whatif > report.total.forfeited.recorded
    assert report.total.balance.whatif < report.total.balance.recorded

    assert await _everything_kept(server, service_dir) == before

    member = report.members[0].member_id
    code, out, err = await _inmail("whatif", "--policy", str(document), "--member", member, *login)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("what-if under policy v2") and "1 of 1 member differ" in lines[0]
    assert lines[1].split() == ["member", "balance", "charged", "refunded", "forfeited", "refused", "stage"]
    assert lines[2].startswith(member) and lines[3].startswith("total")

    code, out, err = await _inmail("whatif", "--policy", str(document), "--member", "nobody", *login)
    assert (code, out) == (1, "")
    assert err.strip().splitlines() == ["inmail: member nobody has no registration in stream INMAIL_EVENTS"]
    assert await _everything_kept(server, service_dir) == before
