"""INMAIL_EVENTS swapped underneath the service: deleted and created again, purged, gone while it
was stopped. Nothing is acknowledged on a history that is not the recorded one; Health, status and
verify say so; serve refuses to start on it until the operator starts over with --new-stream."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from contracts import subjects
from inmail.natsserver import EmbeddedNatsServer
from inmail.ops.client import OperatorError
from inmail.ops.replay import replay
from inmail.ops.status import status
from inmail.ops.verify import verify
from inmail.stream_guard import StreamRefused
from projections.catalogue import CATALOGUE
from tests.integration.service_env import Client, client_for, new_id, running_service, settings_for

INMAIL = [sys.executable, "-m", "inmail.cli"]


async def until(check: Callable[[], Awaitable[Any]], what: str, within: float = 15.0) -> Any:
    """The first truthy result of ``check``, polled; a liveness bound, not a timing assertion."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {within:g}s: {what}")


SEND = {"command_id": "send-1", "subject": "Hi", "body": "Role?"}


async def some_history(client: Client) -> tuple[str, dict[str, Any]]:
    """Two members and an InMail (``SEND``), read back: the read models hold it all."""
    alice, bob = await client.register("recruiter"), await client.register()
    sent = await client.ok("SendInMail", sender_id=alice, recipient_id=bob, **SEND)
    assert (await client.query("Health", min_seq=sent["seq"]))["ok"]
    return alice, sent | {"recipient_id": bob}


async def refused(client: Client, member_id: str) -> bool:
    """Whether the command side refuses a command that writes nothing: it noticed the swap."""
    reply = await client.command("ChangeTier", member_id=member_id, tier="recruiter")
    assert reply["ok"] or reply["error"]["code"] in ("UNAVAILABLE", "UNKNOWN_MEMBER"), reply
    return not reply["ok"] and reply["error"]["code"] == "UNAVAILABLE"


async def degraded_with(client: Client, words: str) -> dict[str, Any] | None:
    health = (await client.query("Health"))["data"]
    # The read models' problems (the streams' own, as dependencies, may say more).
    problems = {
        name: problem for name, problem in health["problems"].items() if name in health["projections"]
    }
    return (
        health
        if health["status"] == "degraded"
        and problems
        and all(words in problem for problem in problems.values())
        else None
    )


async def test_a_stream_deleted_and_created_again_under_a_running_service_acknowledges_nothing_more(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    url = own_nats_server.url
    async with (
        running_service(settings_for(own_nats_server, tmp_path)),
        client_for(own_nats_server, "admin") as client,
    ):
        alice, sent = await some_history(client)
        js = client.nc.jetstream()
        config = (await js.stream_info(subjects.EVENTS_STREAM)).config
        await js.delete_stream(subjects.EVENTS_STREAM)
        # Someone creates it again, as serve used to on its next start: same name, nothing in it.
        await js.add_stream(dataclasses.replace(config, metadata=None))
        health = await until(lambda: degraded_with(client, "was replaced"), "Health says replaced")
        await until(lambda: refused(client, alice), "the command side refuses")
        replies = [
            await client.command(
                "RegisterMember", member_id=new_id("m"), display_name="N", email="n@e.io", tier="free"
            ),
            await client.command("ChangeTier", member_id=alice, tier="free"),
            # Not even a repeat: its answer would come from a history the stream no longer holds.
            await client.command("SendInMail", sender_id=alice, recipient_id=sent["recipient_id"], **SEND),
        ]
        out = io.StringIO()
        status_code = await status(url, out=out, creds=own_nats_server.creds("operator"))
        verify_out = io.StringIO()
        verify_code = await verify(url, out=verify_out, creds=own_nats_server.creds("operator"))
        new_stream = await js.stream_info(subjects.EVENTS_STREAM)
    for reply in replies:
        assert reply["ok"] is False and reply["error"]["code"] == "UNAVAILABLE", reply
    assert "inmail serve --new-stream" in replies[0]["error"]["message"]
    assert new_stream.state.last_seq == 0
    assert set(health["problems"]) == set(CATALOGUE)
    assert health["projections"]["credits"] == sent["seq"]
    assert status_code == 1 and " lag 0" not in out.getvalue() and "was replaced" in out.getvalue()
    assert verify_code == 1 and "cannot be verified" in verify_out.getvalue()


async def test_a_stream_purged_under_a_running_service_acknowledges_nothing_more(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    async with (
        running_service(settings_for(own_nats_server, tmp_path)),
        client_for(own_nats_server, "admin") as client,
    ):
        alice, sent = await some_history(client)
        await client.nc.jetstream().purge_stream(subjects.EVENTS_STREAM)
        await until(lambda: degraded_with(client, "was purged"), "Health says purged")
        await until(lambda: refused(client, alice), "the command side refuses")
        reply = await client.command("ChangeTier", member_id=alice, tier="free")
        info = await client.nc.jetstream().stream_info(subjects.EVENTS_STREAM)
    assert reply["ok"] is False and reply["error"]["code"] == "UNAVAILABLE"
    assert "was purged" in reply["error"]["message"]
    assert info.state.last_seq == sent["seq"] and info.state.messages == 0


async def test_a_stream_gone_while_serve_was_stopped_is_refused_until_the_operator_starts_over(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    url = own_nats_server.url
    settings = settings_for(own_nats_server, tmp_path)
    async with running_service(settings), client_for(own_nats_server, "admin") as client:
        alice, _ = await some_history(client)
    async with client_for(own_nats_server, "admin") as client:
        await client.nc.jetstream().delete_stream(subjects.EVENTS_STREAM)
    with pytest.raises(StreamRefused, match="is gone") as refused:
        async with running_service(settings):
            pass
    assert "inmail serve --new-stream" in str(refused.value) and "\n" not in str(refused.value)
    # serve says it in one line, and creates nothing.
    process = await asyncio.create_subprocess_exec(
        *INMAIL,
        "serve",
        "--nats",
        url,
        "--creds",
        str(own_nats_server.creds("service")),
        "--data-dir",
        str(tmp_path),
        "--log-level",
        "warning",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "--new-stream" in lines[0], lines
    async with client_for(own_nats_server, "admin") as client:
        assert subjects.EVENTS_STREAM not in [
            s.config.name for s in await client.nc.jetstream().streams_info()
        ]
    # Starting over: a new stream, read models rebuilt from it, commands acknowledged again.
    async with (
        running_service(dataclasses.replace(settings, new_stream=True)),
        client_for(own_nats_server, "admin") as client,
    ):
        gone = await client.query("CreditBalance", member_id=alice)
        await client.register()
        health = await client.query("Health", min_seq=1)
    assert gone["error"]["code"] == "UNKNOWN_MEMBER"
    assert health["data"]["status"] == "ok" and health["data"]["stream_seq"] == 1
    # And the next plain start follows the new stream without a word.
    async with running_service(settings), client_for(own_nats_server, "admin") as client:
        assert (await client.query("Health"))["data"]["problems"] == {}


async def test_replay_rebuilds_from_a_replaced_stream_only_when_the_operator_confirms(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    url = own_nats_server.url
    async with (
        running_service(settings_for(own_nats_server, tmp_path, commands=False)),
        client_for(own_nats_server, "admin") as client,
    ):
        js = client.nc.jetstream()
        await until(lambda: _has_stream(client), "the read side created the stream")
        config = (await js.stream_info(subjects.EVENTS_STREAM)).config
        await js.delete_stream(subjects.EVENTS_STREAM)
        await js.add_stream(dataclasses.replace(config, metadata=None))
        await until(lambda: degraded_with(client, "was replaced"), "Health says replaced")
        with pytest.raises(OperatorError, match="confirm with `inmail replay --new-stream`"):
            await replay(url, None, 1, progress=False, creds=own_nats_server.creds("operator"))
        assert (
            await replay(
                url, None, 1, progress=False, new_stream=True, creds=own_nats_server.creds("operator")
            )
            == 0
        )
        health = (await client.query("Health"))["data"]
    # The read models follow the new stream again. (No command process ever ran here, so the
    # command side's streams are missing, and Health says so: that is no read model's problem.)
    assert not set(health["problems"]) & set(health["projections"]), health["problems"]
    assert set(health["problems"]) == {"INMAIL_MEMBERS", "INMAIL_SCHEDULER", "INMAIL_NOTIFICATIONS"}


async def _has_stream(client: Client) -> bool:
    return subjects.EVENTS_STREAM in [s.config.name for s in await client.nc.jetstream().streams_info()]
