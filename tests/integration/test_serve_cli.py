"""`inmail serve` as an operator runs it: a real process, signals, ports, bad URLs."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import nats

INMAIL = [sys.executable, "-m", "inmail.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INMAIL, *args], capture_output=True, text=True, timeout=timeout)


def test_serve_says_clearly_when_its_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("serve", "--port", str(port), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and "already in use" in lines[0]


def test_serve_says_clearly_when_the_nats_url_is_unreachable(tmp_path: Path) -> None:
    result = run("serve", "--nats", f"nats://127.0.0.1:{free_port()}", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach NATS" in lines[0]


def test_operator_commands_fail_with_one_line_on_an_unreachable_server() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    for command in (["status"], ["verify"], ["events"], ["replay"]):
        result = run(*command, "--nats", url)
        assert result.returncode == 1, command
        assert len(result.stderr.strip().splitlines()) == 1, (command, result.stderr)
        assert "Traceback" not in result.stderr


def test_bad_arguments_exit_non_zero_with_usage() -> None:
    result = run("replay", "--from-seq", "0")
    assert result.returncode == 2 and "from-seq" in result.stderr


def test_serve_runs_the_embedded_server_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*INMAIL, "serve", "--port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert "ready" in ready, (ready, process.stderr.read() if process.stderr else "")
        assert asyncio.run(_register(f"nats://127.0.0.1:{port}", tmp_path))["ok"] is True
        server_pids = _nats_server_pids(tmp_path)
        assert server_pids
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in server_pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in server_pids)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_ctrl_c_in_a_terminal_stops_serve_cleanly(tmp_path: Path) -> None:
    # A terminal's Ctrl-C sends SIGINT to the whole foreground process group: the
    # embedded server must not go first and leave the service draining into nothing.
    port = free_port()
    process = subprocess.Popen(
        [*INMAIL, "serve", "--port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        assert "ready" in process.stdout.readline()
        assert asyncio.run(_register(f"nats://127.0.0.1:{port}", tmp_path))["ok"] is True
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=30) == 0
        stderr = process.stderr.read()
        assert "Traceback" not in stderr and "NATS is gone" not in stderr, stderr
        assert not _nats_server_pids(tmp_path)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def _register(url: str, data_dir: Path) -> dict[str, object]:
    nc = await nats.connect(url, user_credentials=str(data_dir / "creds" / "client.creds"))
    fields = {"member_id": "alice", "display_name": "Alice", "email": "a@b.c", "tier": "free"}
    body = msgspec.json.encode({"command_id": "c1", **fields})
    try:
        reply: dict[str, object] = msgspec.json.decode(
            (await nc.request("inmail.cmd.RegisterMember", body, timeout=10)).data
        )
    finally:
        await nc.close()
    return reply


def _nats_server_pids(data_dir: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", str(data_dir / "nats")], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
