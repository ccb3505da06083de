"""The whole service in-process on a real nats-server, and a client that talks to it over NATS."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from contracts import subjects
from eventstore import connect
from inmail.app import InMailService, ServiceSettings, default_store_url
from inmail.natsserver import EmbeddedNatsServer
from inmail.stream_guard import BUCKET as IDENTITY_BUCKET
from services.monthly_refresh import BUCKET


class Client:
    """Sends commands and queries as another service would: JSON over NATS request/reply."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc

    async def raw(self, subject: str, body: bytes, wait: float = 10.0) -> dict[str, Any]:
        reply = await self.nc.request(subject, body, timeout=wait)
        decoded: dict[str, Any] = msgspec.json.decode(reply.data)
        return decoded

    async def command(self, name: str, **fields: Any) -> dict[str, Any]:
        fields.setdefault("command_id", new_id("cmd"))
        return await self.raw(subjects.command(name), msgspec.json.encode(fields))

    async def ok(self, name: str, **fields: Any) -> dict[str, Any]:
        reply = await self.command(name, **fields)
        assert reply["ok"] is True, reply
        return reply

    async def query(self, name: str, **fields: Any) -> dict[str, Any]:
        return await self.raw(subjects.query(name), msgspec.json.encode(fields))

    async def register(self, tier: str = "premium_career", **fields: Any) -> str:
        member_id = fields.pop("member_id", None) or new_id("m")
        await self.ok(
            "RegisterMember",
            member_id=member_id,
            display_name=f"Member {member_id}",
            email=f"{member_id}@example.com",
            tier=tier,
            **fields,
        )
        return member_id


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def server_key_dir(server: EmbeddedNatsServer) -> Path:
    """The key-encryption key's folder of the installation a test server stands for."""
    nats_dir = server.settings.data_dir
    return nats_dir.with_name(f"{nats_dir.name}-datakeys")


def settings_for(server: EmbeddedNatsServer, data_dir: Path, **overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "nats_url": server.url,
        "nats_creds": server.creds("service"),
        "store_url": default_store_url(data_dir),
        "trust_client_time": True,
        "scheduler": False,
        # One key folder per server, as every process of one installation shares it.
        "key_dir": server_key_dir(server),
    }
    values.update(overrides)
    return ServiceSettings(**values)


@asynccontextmanager
async def running_service(settings: ServiceSettings) -> AsyncIterator[InMailService]:
    service = InMailService(settings)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def delete_service_streams(server: EmbeddedNatsServer) -> None:
    """Forget everything the service keeps in JetStream, its record of the events stream included,
    so the next service starts on a new stream as a first install would."""
    async with client_for(server, "admin") as cleanup:
        js = cleanup.nc.jetstream()
        streams = (subjects.EVENTS_STREAM, subjects.MEMBERS_STREAM, subjects.NOTIFICATIONS_STREAM)
        for stream in (*streams, f"KV_{IDENTITY_BUCKET}"):
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(stream)
        with contextlib.suppress(NotFoundError):
            await js.delete_key_value(BUCKET)


@asynccontextmanager
async def client_for(server: EmbeddedNatsServer, role: str = "client") -> AsyncIterator[Client]:
    """A client playing ``role`` on a test's own server."""
    async with client_at(server.url, server.creds(role), name=f"test-{role}") as client:
        yield client


@asynccontextmanager
async def client_at(url: str, creds: Path | None, *, name: str = "test-client") -> AsyncIterator[Client]:
    """A client with a credentials file (e.g. the one ``inmail serve`` made in its data folder)."""
    nc = await connect(url, name=name, creds=creds)
    try:
        yield Client(nc)
    finally:
        await nc.close()
