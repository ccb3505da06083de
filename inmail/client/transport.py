"""Connecting to NATS and request/reply over one reply subscription.

``Requester`` waits for replies on one wildcard subscription of its own (a counter
token per request, no random inbox per request, no ``asyncio.wait_for``): on a
busy machine the client's CPU per request is part of every figure it measures.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError

from inmail.client.errors import InMailError

_NO_RESPONDERS = "503"
"""The status header of the server's answer to a request nobody subscribes to."""


async def connect(url: str, *, creds: str | Path | None = None, name: str = "inmail-client") -> NATS:
    """A connection that fails fast the first time, then reconnects forever.

    ``pending_size=0``: a request made while reconnecting fails at once (and is
    retried by the caller with the same ``command_id``) instead of being buffered.
    """
    options: dict[str, Any] = {}
    if creds is not None:
        options["user_credentials"] = str(creds)
    seen: deque[str] = deque(maxlen=8)

    async def remember(exc: Exception) -> None:
        # nats-py prints every connection error to stderr by default; the requests report
        # enough. The latest are kept to explain a failed first connect (credentials refused).
        seen.append(str(exc))

    try:
        # Every seed of a cluster, comma-separated, as `inmail serve --nats` takes them.
        nc = await nats.connect(
            [seed.strip() for seed in url.split(",") if seed.strip()],
            name=name,
            connect_timeout=2,
            # nats-py applies this limit to the first connection too: keep it small so an
            # unreachable URL fails fast, then reconnect forever once connected.
            max_reconnect_attempts=1,
            reconnect_time_wait=0.25,
            pending_size=0,
            error_cb=remember,
            disconnected_cb=_quiet_event,
            reconnected_cb=_quiet_event,
            closed_cb=_quiet_event,
            **options,
        )
    except Exception as exc:
        refusals = [reason for reason in seen if "authorization" in reason.lower()]
        if refusals:
            used = f"the credentials {creds}" if creds else "a connection without credentials"
            raise InMailError("UNAVAILABLE", f"NATS at {url} refused {used}: {refusals[-1]}") from exc
        raise InMailError("UNAVAILABLE", f"cannot reach NATS at {url}: {exc or type(exc).__name__}") from exc
    nc.options["max_reconnect_attempts"] = -1
    return nc


async def _quiet_event() -> None:
    return None


class Requester:
    """Request/reply over one reply subscription; ``start`` before use."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self._prefix = ""
        self._tokens = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Subscribe to the replies."""
        self._prefix = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(f"{self._prefix}.*", cb=self._on_reply)

    async def stop(self) -> None:
        """Unsubscribe."""
        sub, self._sub = self._sub, None
        if sub is not None and not self.nc.is_closed:
            await sub.unsubscribe()

    async def request(self, subject: str, payload: bytes) -> bytes:
        """Send a request and wait for the reply's body (the caller bounds the wait).

        Raises ``NoRespondersError`` when no one subscribes to ``subject``.
        """
        token = str(next(self._tokens))
        reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[token] = reply
        try:
            await self.nc.publish(subject, payload, reply=f"{self._prefix}.{token}")
            return await reply
        finally:
            del self._waiting[token]

    async def _on_reply(self, msg: Msg) -> None:
        waiting = self._waiting.get(msg.subject[len(self._prefix) + 1 :])
        if waiting is None or waiting.done():
            return
        if msg.headers and msg.headers.get("Status") == _NO_RESPONDERS and not msg.data:
            waiting.set_exception(NoRespondersError())
        else:
            waiting.set_result(msg.data)
