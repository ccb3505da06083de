"""``inmail cluster up``: a 3-node nats-server cluster on this machine, to try the service on a cluster."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click

from inmail.cli.common import CONTEXT_SETTINGS, CliError, log_level_option, run
from inmail.devcluster import LoopbackCluster
from inmail.natsserver import NatsServerError
from inmail.security.installation import SecurityError


@click.group("cluster", context_settings=CONTEXT_SETTINGS)
def cluster_group() -> None:
    """A NATS cluster on this machine, for trying InMail on one (production: deploy/)."""


@cluster_group.command("up", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("inmail-cluster"),
    show_default=True,
    envvar="INMAIL_CLUSTER_DATA_DIR",
    show_envvar=True,
    help="keys, every role's credentials (creds/) and each node's store (nodes/nN); reused on the next start",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65530),
    default=4222,
    show_default=True,
    help="the first node's client port; the others take the next ones",
)
@click.option(
    "--route-port",
    type=click.IntRange(1, 65530),
    default=6222,
    show_default=True,
    help="the first node's route port (node to node); the others take the next ones",
)
@click.option("--nodes", type=click.IntRange(3, 5), default=3, show_default=True, help="how many nodes")
@click.option(
    "--relaxed-fsync",
    is_flag=True,
    help="fsync on the server's default interval instead of every write (faster; may lose acknowledged "
    "writes on power loss)",
)
@log_level_option("warning")
def up_command(
    data_dir: Path, port: int, route_port: int, nodes: int, relaxed_fsync: bool, log_level: str
) -> int:
    """Start the nodes (JetStream, routes, operator mode with the service's roles) and keep them
    running until Ctrl-C; print the --nats seeds and how to start the service on them."""
    try:
        cluster = LoopbackCluster.create(
            data_dir,
            [port + n for n in range(nodes)],
            [route_port + n for n in range(nodes)],
            durable=not relaxed_fsync,
        )
    except SecurityError as exc:
        raise CliError(str(exc)) from exc
    return run(_up(cluster, data_dir), log_level)


async def _up(cluster: LoopbackCluster, data_dir: Path) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await cluster.start()
    except NatsServerError as exc:
        cluster.stop()
        raise CliError(str(exc)) from exc
    creds = cluster.installation.creds_dir
    service = (
        f"--nats {cluster.urls} --creds {creds / 'service.creds'} --replicas {len(cluster.nodes)} "
        f"--key-dir {data_dir / 'datakeys'}"
    )
    print(
        f"NATS cluster ready: {len(cluster.nodes)} nodes on {cluster.urls} "
        f"(stores in {data_dir / 'nodes'}, credentials in {creds})\n"
        "In other terminals:\n"
        f"  inmail serve {service} --role commands --data-dir {data_dir / 'commands-1'} --http-port 8081\n"
        f"  inmail serve {service} --role commands --data-dir {data_dir / 'commands-2'} --http-port 8082\n"
        f"  inmail serve {service} --role read --data-dir {data_dir / 'read'} --http-port 8080\n"
        f"  inmail status --nats {cluster.urls} --data-dir {data_dir}\n"
        "Ctrl-C stops the cluster.",
        flush=True,
    )
    try:
        while not stop.is_set():
            gone = [node.name for node in cluster.nodes if not node.running]
            if gone:
                raise CliError(f"node {gone[0]} stopped on its own: see {cluster.node(gone[0]).log_path}")
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                continue
    finally:
        cluster.stop()
    return 0
