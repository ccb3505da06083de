"""The embedded nats-server: start, JetStream, config, clean shutdown, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from inmail.natsserver import EmbeddedNatsServer, NatsServerError, NatsServerSettings


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of a live (non-zombie) process, or None when it is gone.

    Comparing start times guards against the pid being reused by an unrelated process;
    a zombie counts as gone because only its (possibly absent) parent can reap it.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    state, start_time = fields[0], int(fields[19])
    return None if state in ("Z", "X") else start_time


def wait_until_gone(pid: int, start_time: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process_start_time(pid) != start_time:
            return True
        time.sleep(0.05)
    return process_start_time(pid) != start_time


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(NatsServerSettings(data_dir=tmp_path / "nats", port=0))
    yield server
    server.stop()


async def test_starts_on_a_free_port_and_accepts_connections(server: EmbeddedNatsServer) -> None:
    url = server.start()

    assert server.running
    port = int(url.rsplit(":", 1)[1])
    assert port not in (0, 4222)
    nc = await nats.connect(url)
    try:
        assert nc.is_connected
        assert nc.connected_url is not None and nc.connected_url.port == port
    finally:
        await nc.close()


async def test_jetstream_stores_and_returns_a_message(server: EmbeddedNatsServer) -> None:
    nc = await nats.connect(server.start())
    try:
        js = nc.jetstream()
        await js.add_stream(name="PROBE", subjects=["probe.>"])
        ack = await js.publish("probe.one", b"hello")
        stored = await js.get_msg("PROBE", ack.seq)
        assert (ack.stream, ack.seq, stored.data) == ("PROBE", 1, b"hello")
    finally:
        await nc.close()


def test_a_taken_port_gives_a_one_line_error_naming_the_port(
    nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    taken = int(nats_server.url.rsplit(":", 1)[1])
    second = EmbeddedNatsServer(NatsServerSettings(data_dir=tmp_path / "second", port=taken))

    with pytest.raises(NatsServerError) as raised:
        second.start()

    message = str(raised.value)
    assert str(taken) in message
    assert "\n" not in message
    assert not second.running and second.pid is None


def test_a_missing_binary_gives_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "nats-server"
    server = EmbeddedNatsServer(NatsServerSettings(data_dir=tmp_path / "nats", port=0, binary=str(missing)))

    with pytest.raises(NatsServerError, match="nats-server binary not found") as raised:
        server.start()

    assert str(missing) in str(raised.value)
    assert not server.running


def test_a_binary_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    not_executable = tmp_path / "nats-server"
    not_executable.write_text("#!/bin/sh\n")
    not_executable.chmod(0o644)
    server = EmbeddedNatsServer(
        NatsServerSettings(data_dir=tmp_path / "nats", port=0, binary=str(not_executable))
    )

    with pytest.raises(NatsServerError, match="not executable"):
        server.start()


def test_durable_writes_sync_interval_always_to_the_config(tmp_path: Path) -> None:
    settings = NatsServerSettings(data_dir=tmp_path / "nats", port=0, durable=True)
    with EmbeddedNatsServer(settings) as server:
        assert server.running
        written = (settings.data_dir / "nats-server.conf").read_text()

    assert "sync_interval: always" in written


def test_relaxed_leaves_the_server_default_fsync_interval(tmp_path: Path) -> None:
    settings = NatsServerSettings(data_dir=tmp_path / "nats", port=0, durable=False)
    with EmbeddedNatsServer(settings) as server:
        assert server.running
        written = (settings.data_dir / "nats-server.conf").read_text()

    assert "jetstream" in written
    assert "sync_interval" not in written


def test_the_default_is_durable(tmp_path: Path) -> None:
    server = EmbeddedNatsServer(NatsServerSettings(data_dir=tmp_path))

    assert "sync_interval: always" in server.config_text()


def test_stop_leaves_no_process_behind(server: EmbeddedNatsServer) -> None:
    server.start()
    pid = server.pid
    assert pid is not None
    start_time = process_start_time(pid)
    assert start_time is not None

    server.stop()

    assert not server.running
    assert process_start_time(pid) != start_time


def test_restart_keeps_the_port(server: EmbeddedNatsServer) -> None:
    first_url = server.start()
    first_pid = server.pid

    assert server.restart() == first_url
    assert server.pid != first_pid
    assert server.restart(crash=True) == first_url


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from inmail.natsserver import EmbeddedNatsServer, NatsServerSettings

    server = EmbeddedNatsServer(NatsServerSettings(data_dir=Path(sys.argv[1]), port=0))
    server.start()
    print(server.pid, flush=True)
    time.sleep(60)
    """
)


def test_killing_the_python_parent_leaves_no_orphaned_server(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path / "nats")],
        stdout=subprocess.PIPE,
        text=True,
    )
    server_pid: int | None = None
    start_time: int | None = None
    try:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        start_time = process_start_time(server_pid)
        assert start_time is not None, "the server should be running while its parent lives"

        parent.send_signal(signal.SIGKILL)
        parent.wait()

        assert wait_until_gone(server_pid, start_time, within=5.0)
    finally:
        parent.kill()
        parent.wait()
        # If the test failed, do not leave the orphan running.
        orphan = server_pid if start_time is not None else None
        if orphan is not None and process_start_time(orphan) == start_time:
            os.kill(orphan, signal.SIGKILL)
