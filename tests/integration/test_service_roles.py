"""Commands and read side in separate processes' roles: each answers its own subjects only."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from nats.errors import NoRespondersError

from inmail.app import InMailService
from inmail.natsserver import EmbeddedNatsServer
from tests.conftest import secured_server
from tests.integration.service_env import client_for, running_service, settings_for


async def test_a_commands_service_and_a_read_service_together_answer_everything(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    commands = settings_for(own_nats_server, tmp_path / "commands", projections=False)
    read = settings_for(own_nats_server, tmp_path / "read", commands=False)
    async with client_for(own_nats_server) as client:
        async with running_service(commands) as writer:
            assert writer.projections is None and writer.queries is None
            with pytest.raises(NoRespondersError):
                await client.query("Health")
            sender = await client.register("recruiter")
            recipient = await client.register()
            sent = await client.ok(
                "SendInMail", sender_id=sender, recipient_id=recipient, subject="Hi", body="Role?"
            )
            async with running_service(read) as reader:
                assert reader.executor is None and reader.projections is not None
                balance = await client.query("CreditBalance", member_id=sender, min_seq=sent["seq"])
                assert balance["ok"] is True and balance["data"]["balance"] == 149
                health = await client.query("Health")
                assert health["ok"] is True and health["data"]["stream_seq"] == sent["seq"]
        # Only the read service is left: commands have no responders, queries still answer.
        async with running_service(read):
            with pytest.raises(NoRespondersError):
                await client.command(
                    "RegisterMember", member_id="m_late", display_name="L", email="l@e.io", tier="free"
                )
            inbox = await client.query("Inbox", member_id=recipient, box="received")
            assert [item["inmail_id"] for item in inbox["data"]["items"]] == [sent["data"]["inmail_id"]]


async def test_a_service_with_neither_role_is_refused(
    own_nats_server: EmbeddedNatsServer, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="nothing"):
        async with running_service(
            settings_for(own_nats_server, tmp_path, commands=False, projections=False)
        ):
            pass


def test_serve_help_lists_the_roles() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "inmail.cli", "serve", "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    assert "--role [all|commands|read]" in result.stdout


async def test_stopping_after_the_server_is_gone_finishes_without_error(tmp_path: Path) -> None:
    server = secured_server(tmp_path / "nats")
    server.start()
    try:
        service = InMailService(settings_for(server, tmp_path))
        await service.start()
    finally:
        server.stop()
    await asyncio.wait_for(service.stop(), 60)
    assert service.nc is None and service.broker is None and service.projections is None
