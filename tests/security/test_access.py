"""Who gets in: anonymous clients, another installation's users, revoked users, issued users."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from contracts import subjects
from eventstore import NatsUnreachable, connect
from inmail.security.installation import issue, secure
from inmail.security.revocation import revoke
from tests.conftest import secured_server
from tests.security.support import Installed, connect_as, free_port, snapshot, verified

INMAIL = [sys.executable, "-m", "inmail.cli"]


async def refused_at_connect(url: str, creds: Path | None) -> str:
    """The one-line reason a refused connection gives (``eventstore.connect``, as every command uses)."""
    with pytest.raises(NatsUnreachable) as raised:
        nc = await connect(url, creds=creds)
        await nc.close()
    reason = str(raised.value)
    assert "refused" in reason and "authorization violation" in reason.lower(), reason
    return reason


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INMAIL, *args], capture_output=True, text=True, timeout=60)


def issue_partner(installed: Installed) -> tuple[Path, Path]:
    """``inmail creds issue`` for a partner; its file (0600) and a copy kept elsewhere."""
    issued = cli(
        "creds", "issue", "--role", "client", "--name", "partner", "--data-dir", str(installed.data_dir)
    )
    assert issued.returncode == 0, issued.stderr
    creds = Path(issued.stdout.strip())
    assert creds == installed.creds("partner") and creds.stat().st_mode & 0o777 == 0o600
    copy = installed.data_dir / "partner-copy.creds"
    copy.write_bytes(creds.read_bytes())
    return creds, copy


async def test_an_anonymous_connection_is_refused(installed: Installed) -> None:
    before = await snapshot(installed)
    await refused_at_connect(installed.url, None)
    assert await snapshot(installed) == before and await verified(installed)


async def test_another_installations_credentials_are_refused(installed: Installed, tmp_path: Path) -> None:
    stranger = secure(tmp_path / "elsewhere")
    before = await snapshot(installed)
    for role in ("client", "service", "operator"):
        await refused_at_connect(installed.url, stranger.creds(role))
    assert await snapshot(installed) == before and await verified(installed)


async def test_a_revoked_user_is_refused_at_once_open_connections_included(installed: Installed) -> None:
    creds, copy = issue_partner(installed)
    closed = asyncio.Event()
    session = await connect_as(installed.url, creds, closed_cb=_setter(closed), allow_reconnect=False)
    assert (await session.request(subjects.query("Health"), {}))["ok"] is True

    revoked = await asyncio.to_thread(
        cli,
        "creds",
        "revoke",
        "--name",
        "partner",
        "--data-dir",
        str(installed.data_dir),
        "--nats",
        installed.url,
    )
    assert revoked.returncode == 0, revoked.stderr
    await asyncio.wait_for(closed.wait(), 5)
    assert not await asyncio.to_thread(creds.exists)
    # The file is gone here; a copy kept elsewhere is refused all the same, and can do nothing.
    before = await snapshot(installed)
    await refused_at_connect(installed.url, copy)
    assert await snapshot(installed) == before and await verified(installed)
    listed = await asyncio.to_thread(cli, "creds", "list", "--data-dir", str(installed.data_dir))
    assert any(line.split()[:3] == ["partner", "client", "revoked"] for line in listed.stdout.splitlines())


async def test_a_revocation_survives_a_server_restart(tmp_path: Path) -> None:
    server = secured_server(tmp_path / "data")
    server.start()
    try:
        installation = secure(tmp_path / "data")
        creds = issue(installation, "client", "temporary")
        kept = Path(await asyncio.to_thread(shutil.copy, creds, tmp_path / "kept.creds"))
        session = await connect_as(server.url, kept)
        await session.nc.close()
        await revoke(installation, "temporary", server.url)
        await refused_at_connect(server.url, kept)
        server.restart()
        # The new account JWT is preloaded at start: no window with the old one.
        await refused_at_connect(server.url, kept)
        other = await connect_as(server.url, server.creds("client"))
        await other.nc.close()
    finally:
        server.stop()


def test_serve_insecure_warns_on_every_start_and_lets_anyone_in(tmp_path: Path) -> None:
    port = free_port()
    with (tmp_path / "serve.log").open("w") as log:
        process = subprocess.Popen(
            [*INMAIL, "serve", "--insecure", "--port", str(port), "--data-dir", str(tmp_path / "open")],
            stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
    try:
        assert process.stdout is not None
        assert "InMail broker ready" in process.stdout.readline()
        asyncio.run(_connect_and_close(f"nats://127.0.0.1:{port}"))
    finally:
        process.terminate()
        process.wait(60)
    assert "WARNING: --insecure" in (tmp_path / "serve.log").read_text()
    assert not (tmp_path / "open" / "creds").exists()


def test_serve_insecure_on_a_secured_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    secure(tmp_path)
    result = subprocess.run(
        [*INMAIL, "serve", "--insecure", "--port", str(free_port()), "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "--insecure" in lines[0], lines


async def _connect_and_close(url: str) -> None:
    session = await connect_as(url, None)
    await session.nc.close()


def _setter(event: asyncio.Event) -> Callable[[], Awaitable[None]]:
    async def set_it() -> None:
        event.set()

    return set_it


def test_commands_without_credentials_say_so_in_one_line(installed: Installed, tmp_path: Path) -> None:
    for command in (["simulate", "--members", "2"], ["verify"], ["events"]):
        result = cli(*command, "--nats", installed.url, "--data-dir", str(tmp_path))
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, (command, lines)
        assert "refused a connection without credentials" in lines[0], lines
