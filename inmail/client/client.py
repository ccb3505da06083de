"""``InMailClient``: how a Python service talks to InMail Broker (contract section 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from nats.aio.client import Client as NATS

from inmail.client.core import ATTEMPT_TIMEOUT, DEADLINE
from inmail.client.methods import Methods, SyncMethods
from inmail.client.sync import LoopThread
from inmail.client.transport import Requester, connect

DEFAULT_URL = "nats://127.0.0.1:4222"


class InMailClient(Methods):
    """Commands, queries and events of InMail Broker over NATS, typed from the contract.

    One method per command and query (``send_inmail``, ``credit_balance``, …) with
    the contract's fields as keyword arguments. A command's ``command_id`` is
    generated when not given; a timeout or ``UNAVAILABLE`` is retried with the
    same one until ``deadline`` seconds have passed, each attempt waiting at most
    ``attempt_timeout`` seconds (a deadline of 0 makes one attempt). Arguments the
    service would refuse are refused before sending.
    """

    @classmethod
    async def connect(
        cls,
        url: str = DEFAULT_URL,
        *,
        creds: str | Path | None = None,
        name: str = "inmail-client",
        deadline: float = DEADLINE,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
    ) -> Self:
        """Connect to the NATS server(s) at ``url`` (with a credentials file when it asks for one)."""
        nc = await connect(url, creds=creds, name=name)
        try:
            return await cls._start(nc, True, deadline, attempt_timeout)
        except BaseException:
            await nc.close()
            raise

    @classmethod
    async def over(
        cls, nc: NATS, *, deadline: float = DEADLINE, attempt_timeout: float = ATTEMPT_TIMEOUT
    ) -> Self:
        """A client on a connection of the caller's, which ``close`` leaves open."""
        return await cls._start(nc, False, deadline, attempt_timeout)

    @classmethod
    async def _start(cls, nc: NATS, owns: bool, deadline: float, attempt_timeout: float) -> Self:
        requester = Requester(nc)
        await requester.start()
        return cls(nc, requester, owns_connection=owns, deadline=deadline, attempt_timeout=attempt_timeout)

    @staticmethod
    def connect_sync(
        url: str = DEFAULT_URL,
        *,
        creds: str | Path | None = None,
        name: str = "inmail-client",
        deadline: float = DEADLINE,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
    ) -> SyncInMailClient:
        """The same client for code without asyncio: every method blocks until answered."""
        runner = LoopThread()
        try:
            client = runner.run(
                InMailClient.connect(
                    url, creds=creds, name=name, deadline=deadline, attempt_timeout=attempt_timeout
                )
            )
        except BaseException:
            runner.stop()
            raise
        return SyncInMailClient(client, runner)


class SyncInMailClient(SyncMethods):
    """``InMailClient`` without asyncio (from ``InMailClient.connect_sync``): the same methods, blocking."""
