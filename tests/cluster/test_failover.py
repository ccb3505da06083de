"""Failover under load on a real 3-node cluster with R3 streams: nothing acknowledged lost, nothing twice.

Two ``inmail serve --role commands`` processes and one ``--role read`` process on PostgreSQL
serve ~64 commands in flight from careful clients (``tests.faults.workload``: retries with
the same command_id, every attempt in the clients' own ledger). Each phase kills one thing
with ``kill -9`` two seconds into the traffic and brings it back a few seconds later: the node
leading ``INMAIL_EVENTS``, then a node following it, then one command process; then, a rolling
restart of every node. After each phase the ledger is audited against the stream, the read
models and ``inmail verify`` (``tests.faults.audit``), every InMail is in exactly one inbox,
every ``serve`` still runs and is ready, and the longest stretch without a successful command
since the kill is printed (``pytest -m cluster -s``; docs/reliability.md reports them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from contracts import subjects
from inmail.devcluster import ClusterNode, LoopbackCluster
from inmail.streams import STORES
from tests.cluster.support import check_inboxes, longest_gap
from tests.faults.audit import Figures, audit
from tests.faults.ledger import Ledger
from tests.faults.workload import Access, clients, register_cast, traffic
from tests.serve_process import Serve, free_port

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(400)]

TRAFFIC = 10.0
"""Seconds of traffic in each phase; the fault comes ``FAULT_AT`` seconds in."""
FAULT_AT = 2.0
DOWN_FOR = 4.0
"""Seconds a killed node or process stays down before it is started again."""
CONTRACT_GAP = 30.0
"""Section 13: service continues within seconds, under 30 s, on the remaining nodes."""


class Layout:
    """The processes of the scenario: two command processes and one read process, each with HTTP."""

    def __init__(
        self, cluster: LoopbackCluster, tmp_path: Path, postgres_url: str, started: list[Serve]
    ) -> None:
        self.service = (
            "--nats", cluster.urls, "--creds", str(cluster.creds("service")), "--replicas", "3",
            "--key-dir", str(tmp_path / "datakeys"),  # one installation: one key folder
        )  # fmt: skip
        self.tmp_path = tmp_path
        self.postgres_url = postgres_url
        self.started = started
        self.ports: dict[str, int] = {}
        self.current: dict[str, Serve] = {}

    async def start(self, name: str) -> Serve:
        role = "read" if name == "read" else "commands"
        port = self.ports.setdefault(name, free_port())
        store = ("--store", self.postgres_url) if role == "read" else ()
        serve = Serve(
            self.tmp_path / name, *self.service, "--role", role, *store, "--http-port", str(port),
            log_name=f"serve-{len(self.started)}.log",
        )  # fmt: skip
        self.started.append(serve)
        self.current[name] = await asyncio.to_thread(serve.ready)
        return serve

    async def all_ready(self, within: float = 30.0) -> None:
        """Every process still runs (none exited because a node went away) and answers /readyz 200."""
        deadline = time.monotonic() + within
        async with httpx.AsyncClient() as http:
            for name, serve in self.current.items():
                assert serve.process.poll() is None, f"{name} exited: {serve.log()[-3000:]}"
                while True:
                    answer = await http.get(f"http://127.0.0.1:{self.ports[name]}/readyz", timeout=5)
                    if answer.status_code == 200:
                        break
                    assert time.monotonic() < deadline, f"{name} not ready: {answer.text}"
                    await asyncio.sleep(0.25)


async def phase(
    name: str,
    cluster: LoopbackCluster,
    layout: Layout,
    fault: Callable[[], Awaitable[datetime]],
    seconds: float = TRAFFIC,
) -> tuple[Figures, float]:
    """Traffic with ``fault`` in the middle (it returns when it struck), then the audit and the checks."""
    access = Access(cluster.creds("client"), cluster.creds("subscriber"), cluster.creds("operator"))
    ledger = Ledger()
    async with clients(cluster.urls, ledger, access.client) as senders:
        cast = await register_cast(senders)
        began = datetime.now(UTC)
        load = asyncio.create_task(traffic(senders, cast, seconds))
        await asyncio.sleep(FAULT_AT)
        struck = await fault()
        await load
        ended = datetime.now(UTC)
        # Every replica back and caught up before the audit: `inmail verify` after the node returns.
        await cluster.wait_current([store.stream for store in STORES])
        figures = await audit(senders, cast, cluster.urls, access)
        last_seq = (await cluster.stream_info(subjects.EVENTS_STREAM)).state.last_seq
        inmails = await check_inboxes(senders, cast, last_seq)
    gap = longest_gap(ledger, struck, ended)
    before = longest_gap(ledger, began, struck)
    print(
        f"\n{name}: {figures}; {inmails} InMails each in one inbox; longest gap without a "
        f"successful command {gap:.2f} s after the fault ({before:.2f} s before it)"
    )
    assert figures.acknowledged > 100, f"too little got through to mean anything: {figures}"
    assert gap < CONTRACT_GAP, f"{name}: {gap:.1f} s without a successful command"
    await layout.all_ready()
    return figures, gap


async def test_kill_9_of_the_leader_a_follower_and_a_command_process_then_a_rolling_restart(
    cluster: LoopbackCluster, tmp_path: Path, postgres_url: str, processes: list[Serve]
) -> None:
    layout = Layout(cluster, tmp_path, postgres_url, processes)
    for name in ("commands-1", "commands-2", "read"):
        await layout.start(name)

    async def kill_node_of(pick: Callable[[str], Awaitable[ClusterNode]]) -> datetime:
        node = await pick(subjects.EVENTS_STREAM)
        # What else it leads explains the gap: each stream or bucket it leads has an election.
        led = [s.name for s in STORES if (await cluster.leader_of(s.stream)) is node]
        print(f"\nkilling {node.name}, leader of: {', '.join(led) or 'nothing'}")
        cluster.kill(node)
        struck = datetime.now(UTC)
        await asyncio.sleep(DOWN_FOR)
        await asyncio.to_thread(cluster.start_node, node)
        return struck

    async def leader() -> datetime:
        return await kill_node_of(cluster.leader_of)

    async def follower() -> datetime:
        return await kill_node_of(cluster.follower_of)

    async def command_process() -> datetime:
        layout.current["commands-1"].kill()
        struck = datetime.now(UTC)
        await asyncio.sleep(DOWN_FOR)
        await layout.start("commands-1")
        return struck

    async def rolling_restart() -> datetime:
        # One node at a time, each stopped and started only once the previous one caught up.
        struck = datetime.now(UTC)
        for node in cluster.nodes:
            assert node.process is not None
            node.process.terminate()
            await asyncio.to_thread(node.process.wait, 15)
            await asyncio.to_thread(cluster.start_node, node)
            await cluster.wait_current([subjects.EVENTS_STREAM], within=30)
        return struck

    gaps = {}
    for name, fault, seconds in (
        ("kill -9 of the INMAIL_EVENTS leader's node", leader, TRAFFIC),
        ("kill -9 of a follower's node", follower, TRAFFIC),
        ("kill -9 of one of two command processes", command_process, TRAFFIC),
        # Traffic through all three restarts: each waits for the node before it to catch up.
        ("rolling restart of the three nodes", rolling_restart, 3 * TRAFFIC),
    ):
        _, gaps[name] = await phase(name, cluster, layout, fault, seconds)
    shown = "; ".join(f"{name} {gap:.2f} s" for name, gap in gaps.items())
    print(f"\nlongest gaps without a successful command: {shown}")
