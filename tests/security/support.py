"""Connecting as a role, recognising the server's refusals, and proving nothing changed."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NATS

from contracts import subjects
from inmail.ops.verify import verify


@dataclass(frozen=True, slots=True)
class Installed:
    """A running ``inmail serve`` with its embedded server and the credentials it made."""

    url: str
    data_dir: Path

    def creds(self, name: str) -> Path:
        return self.data_dir / "creds" / f"{name}.creds"


@dataclass
class Session:
    """A connection and every asynchronous error the server sent it (permission violations)."""

    nc: NATS
    errors: list[str] = field(default_factory=list)

    async def refused(self, action: Awaitable[Any], subject: str, kind: str = "publish") -> None:
        """The server refuses ``action``: a violation of ``kind`` (publish, subscription) on ``subject``."""
        # A request fails (no reply comes); a publish or subscription returns at once:
        # either way, the server's refusal arrives as an asynchronous error.
        with contextlib.suppress(Exception):
            await action
        # nats-py reports the server's -ERR in lower case.
        wanted = (
            f'permissions violation for {"subscription" if "subscri" in kind else "publish"} to "{subject}"'
        )
        for _ in range(100):
            if any(wanted.lower() in e.lower() for e in self.errors):
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"no permissions violation for {subject}: {self.errors}")

    async def request(self, subject: str, body: object) -> dict[str, Any]:
        reply = await self.nc.request(subject, msgspec.json.encode(body), timeout=10)
        decoded: dict[str, Any] = msgspec.json.decode(reply.data)
        return decoded


async def connect_as(url: str, creds: Path | None, **options: Any) -> Session:
    """Connect with ``creds`` (None: anonymously), collecting the server's errors."""
    errors: list[str] = []

    async def collect(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(
        url,
        user_credentials=str(creds) if creds else None,
        error_cb=collect,
        max_reconnect_attempts=1,
        connect_timeout=2,
        **options,
    )
    return Session(nc, errors)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a forbidden action could change: every stream's last sequence and message count."""

    streams: dict[str, tuple[int, int]]


async def snapshot(installed: Installed) -> Snapshot:
    session = await connect_as(installed.url, installed.creds("admin"))
    try:
        js = session.nc.jetstream()
        found: dict[str, tuple[int, int]] = {}
        for name in await js.streams_info():
            found[name.config.name or ""] = (name.state.last_seq, name.state.messages)
        return Snapshot(found)
    finally:
        await session.nc.close()


async def verified(installed: Installed) -> bool:
    """``inmail verify`` with operator.creds finds the read models in agreement with the events."""
    out = io.StringIO()
    return await verify(installed.url, out=out, creds=installed.creds("operator")) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def register(member_id: str, tier: str = "recruiter") -> tuple[str, dict[str, Any]]:
    """A RegisterMember request: subject and body."""
    body = {
        "command_id": f"reg-{member_id}",
        "member_id": member_id,
        "display_name": f"Member {member_id}",
        "email": f"{member_id}@example.com",
        "tier": tier,
    }
    return subjects.command("RegisterMember"), body
