"""``inmail cluster up`` as the README's newcomer runs it: three nodes, the service on them, R3 stores."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from inmail.natsserver import port_is_free
from inmail.streams import STORES
from tests.serve_process import INMAIL, Serve, free_port, run

pytestmark = pytest.mark.cluster


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports."""
    for _ in range(50):
        first = free_port()
        if first + count < 65535 and all(port_is_free("127.0.0.1", first + n) for n in range(count)):
            return first
    raise AssertionError("no consecutive free ports")


def test_cluster_up_starts_three_nodes_the_service_runs_on_with_every_store_r3(
    tmp_path: Path, processes: list[Serve]
) -> None:
    data = tmp_path / "cluster"
    port, route_port = free_ports(3), free_ports(3)
    up = subprocess.Popen(
        [*INMAIL, "cluster", "up", "--data-dir", str(data), "--port", str(port), "--route-port",
         str(route_port), "--relaxed-fsync"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert up.stdout is not None
        ready = up.stdout.readline()
        seeds = ",".join(f"nats://127.0.0.1:{port + n}" for n in range(3))
        assert f"NATS cluster ready: 3 nodes on {seeds}" in ready, (ready, up.stderr and up.stderr.read())
        creds = data / "creds" / "service.creds"
        serve = Serve(tmp_path / "service", "--nats", seeds, "--creds", str(creds), "--replicas", "3")
        processes.append(serve)
        serve.ready()
        status = run("status", "--nats", seeds, "--data-dir", str(data))
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        for store in STORES:
            [line] = [line for line in lines if f"{store.kind} {store.name} " in line]
            assert "replicas 3/3 current" in line, status.stdout
        serve.stop()
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(30)
    assert code == 0
    assert all(port_is_free("127.0.0.1", port + n) for n in range(3)), "a node outlived cluster up"
