"""Faults under load, from outside: real processes killed while ~64 commands are in flight.

Each scenario runs processes of its own: ``inmail serve`` (with its embedded
nats-server, or ``--nats`` to a server the test runs), clients on several
connections that retry with the same command_id as the contract tells them to,
and one fault two seconds into six seconds of traffic. Afterwards
``tests.faults.audit`` checks every guarantee against the clients' own ledger and
the figures are printed (``pytest -m faults -s`` shows them; docs/reliability.md
reports them).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from inmail.natsserver import EmbeddedNatsServer
from tests.faults.audit import Figures, audit
from tests.faults.ledger import Ledger
from tests.faults.workload import Access, clients, register_cast, traffic
from tests.integration.service_env import server_key_dir
from tests.serve_process import Serve, free_port, nats_server_pids

pytestmark = pytest.mark.faults

TRAFFIC = 6.0
"""Seconds of traffic; the fault comes ``FAULT_AT`` seconds in."""
FAULT_AT = 2.0


async def under_load(
    name: str, url: str, access: Access, fault: Callable[[], Awaitable[None]], storms: int = 0
) -> Figures:
    """Traffic with ``fault`` in the middle, every command answered in the end, then the audit."""
    ledger = Ledger()
    async with clients(url, ledger, access.client) as senders:
        cast = await register_cast(senders)
        load = asyncio.create_task(traffic(senders, cast, TRAFFIC, storms=storms))
        await asyncio.sleep(FAULT_AT)
        await fault()
        await load
        figures = await audit(senders, cast, url, access)
    print(f"\n{name}: {figures}")
    assert figures.acknowledged > 100, f"too little got through to mean anything: {figures}"
    return figures


@pytest.fixture
def processes() -> Iterator[list[Serve]]:
    """Every serve a scenario starts, stopped at its end whatever happened."""
    started: list[Serve] = []
    yield started
    for serve in started:
        serve.stop()


def shared_keys(server: EmbeddedNatsServer) -> tuple[str, ...]:
    """Every process of one installation shares its key folder (``--key-dir``)."""
    return ("--key-dir", str(server_key_dir(server)))


async def start(processes: list[Serve], data_dir: Path, *args: str, log_name: str = "serve.log") -> Serve:
    serve = Serve(data_dir, *args, log_name=log_name)
    processes.append(serve)
    return await asyncio.to_thread(serve.ready)


async def test_kill_9_of_the_service(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path, processes: list[Serve]
) -> None:
    url = own_nats_server.url
    creds = str(own_nats_server.creds("service"))
    as_service = ("--nats", url, "--creds", creds, *shared_keys(own_nats_server))
    serve = await start(processes, tmp_path / "service", *as_service)

    async def fault() -> None:
        serve.kill()
        await start(processes, tmp_path / "service", *as_service, log_name="restarted.log")

    await under_load("kill -9 of the service", url, Access.of_server(own_nats_server), fault)


async def test_kill_9_of_serves_whole_process_group(tmp_path: Path, processes: list[Serve]) -> None:
    port = free_port()
    data = tmp_path / "service"
    serve = await start(processes, data, "--port", str(port))

    async def fault() -> None:
        servers = nats_server_pids(data)
        serve.kill(group=True)
        # The embedded server has a session of its own (Ctrl-C reaches serve first); a supervisor
        # killing the whole unit (a cgroup) reaches it too, at the same moment.
        for pid in servers:
            os.kill(pid, signal.SIGKILL)
        await start(processes, data, "--port", str(port), log_name="restarted.log")

    url = f"nats://127.0.0.1:{port}"
    await under_load("kill -9 of serve's process group", url, Access.of_data_dir(data), fault)


async def test_kill_9_of_the_embedded_nats_server(tmp_path: Path, processes: list[Serve]) -> None:
    port = free_port()
    data = tmp_path / "service"
    serve = await start(processes, data, "--port", str(port))

    async def fault() -> None:
        [server] = nats_server_pids(data)
        os.kill(server, signal.SIGKILL)

    url = f"nats://127.0.0.1:{port}"
    await under_load("kill -9 of the embedded nats-server", url, Access.of_data_dir(data), fault)
    assert "was killed by SIGKILL; starting it again" in serve.log()


async def test_nats_server_stop_and_start_under_a_running_service(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path, processes: list[Serve]
) -> None:
    url = own_nats_server.url
    await start(
        processes,
        tmp_path / "service",
        "--nats",
        url,
        "--creds",
        str(own_nats_server.creds("service")),
        *shared_keys(own_nats_server),
    )

    async def fault() -> None:
        await asyncio.to_thread(own_nats_server.restart)

    await under_load("nats-server stop and start", url, Access.of_server(own_nats_server), fault)


async def test_a_retry_storm_of_each_command_across_two_command_processes(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path, processes: list[Serve]
) -> None:
    url = own_nats_server.url
    creds = str(own_nats_server.creds("service"))
    as_service = ("--nats", url, "--creds", creds, *shared_keys(own_nats_server))
    for n in (1, 2):
        await start(processes, tmp_path / f"commands{n}", *as_service, "--role", "commands")
    await start(processes, tmp_path / "read", *as_service, "--role", "read")

    async def no_other_fault() -> None:
        return None

    # Eight of the 64 workers send every command 20 times at once.
    access = Access.of_server(own_nats_server)
    await under_load("retry storm, 20 copies at once", url, access, no_other_fault, storms=8)
