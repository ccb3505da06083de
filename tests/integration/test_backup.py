"""`inmail backup` and `inmail restore`: the same streams, sequences and answers on a fresh server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contracts import subjects
from inmail.natsserver import EmbeddedNatsServer, NatsServerSettings
from inmail.ops.replay import replay
from inmail.ops.verify import differences
from inmail.security.installation import load
from inmail.simulator import SimulationOptions, simulate
from inmail.streams import STORES
from services.monthly_refresh import BUCKET, DONE_KEY
from tests.conftest import secured_server
from tests.integration.service_env import Client, client_for, running_service, server_key_dir, settings_for
from tests.serve_process import run


async def test_a_backup_restored_into_a_fresh_server_gives_the_same_sequences_and_answers(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    server = own_nats_server
    original = server.url
    # As admin: the checks read every stream and bucket directly.
    async with (
        running_service(settings_for(server, tmp_path / "original")),
        client_for(server, "admin") as client,
    ):
        options = SimulationOptions(members=30, months=2, start="2025-01", seed=5)
        summary = await simulate(original, options, creds=server.creds("client"))
        assert sum(summary.commands.values()) > 100
        # The scheduler's bucket holds what a month's refresh leaves (its scheduler is off here).
        await (await client.nc.jetstream().key_value(BUCKET)).put(DONE_KEY, b"2025-02")
        before = await _answers(client)
        stores_before = await _stores(client)
        events_before = await _messages(client, subjects.EVENTS_STREAM)
        file = tmp_path / "inmail.backup"
        backed_up = run("backup", str(file), "--nats", original, "--creds", str(server.creds("backup")))
    assert backed_up.returncode == 0, backed_up.stderr
    assert "backed up stream INMAIL_EVENTS" in backed_up.stdout
    assert "bucket INMAIL_SCHEDULER" in backed_up.stdout

    with secured_server(tmp_path / "fresh") as fresh:
        as_admin = ("--nats", fresh.url, "--creds", str(fresh.creds("admin")))
        restored = run("restore", str(file), *as_admin)
        assert restored.returncode == 0, restored.stderr
        async with client_for(fresh, "admin") as client:
            assert await _stores(client) == stores_before
            assert await _messages(client, subjects.EVENTS_STREAM) == events_before
            assert (await (await client.nc.jetstream().key_value(BUCKET)).get(DONE_KEY)).value == b"2025-02"
            # Read models rebuilt from the restored stream answer as the originals did.
            # The key folder is never in a backup: a restore is read with the installation's own.
            keys = server_key_dir(server)
            async with running_service(settings_for(fresh, tmp_path / "rebuilt", key_dir=keys)):
                operator = fresh.creds("operator")
                assert await replay(fresh.url, progress=False, creds=operator) == 0
                assert await differences(fresh.url, creds=operator) == []
                assert await _answers(client) == before
            # A second restore over it refuses in one line and changes nothing.
            again = run("restore", str(file), *as_admin)
            assert again.returncode == 1
            assert again.stderr.count("\n") == 1 and "already has INMAIL_EVENTS" in again.stderr
            assert "nothing was changed" in again.stderr
            assert await _stores(client) == stores_before

    # Into the data folder of an embedded server (the default deployment), for serve to start on.
    into_folder = run(
        "restore", str(file), "--embedded", "--data-dir", str(tmp_path / "embedded"), "--no-progress"
    )
    assert into_folder.returncode == 0, into_folder.stderr
    folder = load(tmp_path / "embedded")
    settings = NatsServerSettings(data_dir=tmp_path / "embedded" / "nats", port=0, security=folder)
    with EmbeddedNatsServer(settings) as embedded:
        async with client_for(embedded, "service") as client:
            assert await _stores(client) == stores_before


def test_a_backup_without_an_event_stream_fails_in_one_line_and_writes_no_file(tmp_path: Path) -> None:
    with secured_server(tmp_path / "empty") as empty:
        folder = tmp_path / "backups"
        folder.mkdir()
        result = run(
            "backup", str(folder / "b.tar"), "--nats", empty.url, "--creds", str(empty.creds("service"))
        )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "stream INMAIL_EVENTS does not exist" in result.stderr and "no file written" in result.stderr
    assert list(folder.iterdir()) == []


def test_restore_refuses_a_file_that_is_no_backup(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a tar")
    with secured_server(tmp_path / "nats") as server:
        result = run("restore", str(junk), "--nats", server.url, "--creds", str(server.creds("admin")))
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "cannot be read as a backup" in result.stderr


async def _stores(client: Client) -> dict[str, tuple[int, int, int]]:
    js = client.nc.jetstream()
    found = {}
    for store in STORES:
        state = (await js.stream_info(store.stream)).state
        found[store.stream] = (state.messages, state.first_seq, state.last_seq)
    return found


async def _messages(client: Client, stream: str) -> list[tuple[int, str, bytes]]:
    js = client.nc.jetstream()
    last = (await js.stream_info(stream)).state.last_seq
    sub = await js.subscribe(f"{subjects.EVENTS_ROOT}.>", ordered_consumer=True, stream=stream)
    found: list[tuple[int, str, bytes]] = []
    while not found or found[-1][0] < last:
        msg = await sub.next_msg(timeout=5)
        found.append((msg.metadata.sequence.stream, msg.subject, msg.data))
    await sub.unsubscribe()
    return found


async def _answers(client: Client) -> dict[str, Any]:
    """Every member's balance and the overall response statistics, as the read models answer."""
    last = (await client.nc.jetstream().stream_info(subjects.EVENTS_STREAM)).state.last_seq
    stats = await client.query("ResponseStats", min_seq=last)
    members = await _member_ids(client)
    answers: dict[str, Any] = {"stats": stats["data"]}
    for member_id in members:
        answers[member_id] = (await client.query("CreditBalance", member_id=member_id, min_seq=last))["data"]
    return answers


async def _member_ids(client: Client) -> list[str]:
    info = await client.nc.jetstream().stream_info(
        subjects.EVENTS_STREAM, subjects_filter=f"{subjects.MEMBER_EVENTS_PREFIX}*"
    )
    return sorted(subjects.member_of_subject(s) for s in (info.state.subjects or {}))
