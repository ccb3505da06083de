"""A command executor on a real nats-server, with the service's own streams."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from contracts import commands as c
from contracts.replies import CommandOk, Failure
from contracts.types import Tier
from eventstore import JetStreamEventStore, connect
from inmail.natsserver import EmbeddedNatsServer
from inmail.stream_guard import BUCKET as IDENTITY_BUCKET
from inmail.streams import events_stream, members_stream
from services.contacts import ContactBook
from services.executor import Clock, CommandExecutor, CommandSettings, system_clock
from services.repository import MemberRepository
from tests.unit.scenario import register


class Env:
    """Executors sharing one NATS connection (or one each, to act as separate instances)."""

    def __init__(
        self, nc: NATS, store: JetStreamEventStore, contacts: ContactBook, clock: Clock = system_clock
    ) -> None:
        self.nc = nc
        self.store = store
        self.contacts = contacts
        self.clock = clock
        self.executor = self.new_executor()

    def new_executor(self, *, trust_client_time: bool = True) -> CommandExecutor:
        return CommandExecutor(
            MemberRepository(self.store),
            self.contacts,
            CommandSettings(trust_client_time=trust_client_time),
            clock=self.clock,
        )

    async def run(
        self, command: c.AnyCommand, executor: CommandExecutor | None = None
    ) -> CommandOk | Failure:
        return await (executor or self.executor).execute(command)

    async def ok(self, command: c.AnyCommand) -> CommandOk:
        reply = await self.run(command)
        assert isinstance(reply, CommandOk), reply
        return reply

    async def register(self, member_id: str | None = None, tier: Tier = "premium_career", **kw: Any) -> str:
        member_id = member_id or new_id("m")
        await self.ok(register(member_id, tier, command_id=new_id("reg"), **kw))
        return member_id

    async def events_of(self, member_id: str) -> list[dict[str, Any]]:
        stored = await self.store.read_subject(f"inmail.evt.member.{member_id}")
        return [msgspec.json.decode(m.data) for m in stored]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


@asynccontextmanager
async def command_env(server: EmbeddedNatsServer, clock: Clock = system_clock) -> AsyncIterator[Env]:
    # As admin: the environment deletes the streams and the scheduler's bucket afterwards.
    nc = await connect(server.url, creds=server.creds("admin"))
    store = JetStreamEventStore(nc, events_stream())
    await store.ensure_stream()
    await store.open()
    contacts = ContactBook(nc, members_stream())
    await contacts.ensure_stream()
    try:
        yield Env(nc, store, contacts, clock)
    finally:
        await store.close()
        for name in (store.spec.name, contacts.store.spec.name):
            await store.js.delete_stream(name)
        # A service started on these streams recorded the events stream's identity.
        with contextlib.suppress(NotFoundError):
            await store.js.delete_key_value(IDENTITY_BUCKET)
        await nc.close()
