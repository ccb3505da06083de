"""`inmail serve` owns its data folder and watches its nats-server: real processes, real signals."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import msgspec
import nats

from tests.serve_process import Serve, alive, free_port, nats_server_pids, serving, wait_until


def test_a_second_serve_on_the_same_data_dir_refuses_naming_the_holder(tmp_path: Path) -> None:
    with serving(tmp_path / "data", "--port", str(free_port())) as first:
        second = Serve(tmp_path / "data", "--port", str(free_port()), log_name="second.log")
        assert second.wait() == 1
        lines = second.log().strip().splitlines()
        assert len(lines) == 1, lines
        assert f"pid {first.pid}" in lines[0] and "in use" in lines[0]
        # Refused before anything started: no second nats-server on the folder's store.
        assert len(nats_server_pids(tmp_path / "data")) == 1


def test_the_lock_goes_with_a_serve_killed_with_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    first = Serve(data, "--port", str(port)).ready()
    servers = nats_server_pids(data)
    first.kill()
    # Its nats-server dies with it (and holds the folder until then): a new serve takes over.
    wait_until(lambda: not any(alive(pid) for pid in servers), 15, "the orphaned nats-server ended")
    with serving(data, "--port", str(port), log_name="second.log"):
        assert asyncio.run(_register(f"nats://127.0.0.1:{port}", "after"))["ok"] is True


def test_serve_with_an_external_server_and_its_own_store_elsewhere_takes_no_lock(
    tmp_path: Path,
) -> None:
    # Command processes scale out (contract section 13): several may share a working folder.
    port = free_port()
    with serving(tmp_path / "data", "--port", str(port)):
        url = f"nats://127.0.0.1:{port}"
        with (
            serving(tmp_path / "data", "--nats", url, "--role", "commands", log_name="c1.log"),
            serving(tmp_path / "data", "--nats", url, "--role", "commands", log_name="c2.log"),
        ):
            assert asyncio.run(_register(url, "scaled"))["ok"] is True


def test_a_killed_embedded_server_is_started_again_and_serve_answers_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    with serving(data, "--port", str(port)) as serve:
        assert asyncio.run(_register(url, "before"))["ok"] is True
        [server] = nats_server_pids(data)
        os.kill(server, signal.SIGKILL)
        # The contract's 10 s for the restart, a few more for the service's reconnection.
        reply = asyncio.run(_register_within(url, "after", seconds=15))
        assert reply["ok"] is True
        assert nats_server_pids(data) not in ([], [server])
        log = serve.log()
        assert "was killed by SIGKILL; starting it again on port" in log, log
        assert "running again" in log
        again = asyncio.run(_register(url, "before"))
        assert again["ok"] is True, "the first registration was lost in the crash"


def test_serve_gives_up_with_one_line_when_its_server_keeps_dying(tmp_path: Path) -> None:
    data = tmp_path / "data"
    serve = Serve(data, "--port", str(free_port())).ready()
    try:
        for restarts in range(1, 4):
            os.kill(nats_server_pids(data)[0], signal.SIGKILL)
            wait_until(lambda: serve.log().count("running again") == restarts, 10, "a restart")  # noqa: B023
        os.kill(nats_server_pids(data)[0], signal.SIGKILL)
        assert serve.wait(timeout=10) == 1
    finally:
        serve.kill()
    last = serve.log().strip().splitlines()[-1]
    assert last.startswith("inmail: the embedded nats-server was killed by SIGKILL again"), serve.log()
    assert "3 restarts" in last and "giving up" in last


async def _register(url: str, member_id: str) -> dict[str, object]:
    nc = await nats.connect(url)
    fields = {"member_id": member_id, "display_name": "Alice", "email": "a@b.c", "tier": "free"}
    body = msgspec.json.encode({"command_id": f"register-{member_id}", **fields})
    try:
        reply: dict[str, object] = msgspec.json.decode(
            (await nc.request("inmail.cmd.RegisterMember", body, timeout=10)).data
        )
    finally:
        await nc.close()
    return reply


async def _register_within(url: str, member_id: str, seconds: float) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            return await _register(url, member_id)
        except Exception:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)
