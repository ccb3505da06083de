"""Following the stream: one reader's ephemeral pull consumer, created again after a restart."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError, OutboundBufferLimitError
from nats.errors import TimeoutError as NatsTimeoutError

from eventstore.errors import StoreUnavailable
from eventstore.messages import StoredMessage
from eventstore.wire import STATUS, ConsumerCreated


class PullFollower:
    """One reader's ephemeral pull consumer and its single outstanding pull request.

    Messages are handled in the subscription callback, straight into the page being
    filled: no queue hop per message (that hop cost half the read rate).
    """

    def __init__(
        self,
        nc: NATS,
        stream: str,
        timeout: float,
        start: int,
        subject: str,
        batch: int,
        expires: float,
    ) -> None:
        self.nc = nc
        self.stream = stream
        self.timeout = timeout
        self.next_seq = start
        self.subject = subject
        self.batch = batch
        self.expires = expires
        self.consumer = ""
        self.inbox = ""
        self.sub: Subscription | None = None
        self.page: list[StoredMessage] = []
        self.outstanding = 0
        """Messages the current pull request may still deliver (0: none outstanding)."""
        self.failed = False
        self.arrived = asyncio.Event()
        self.requested_at = 0.0

    async def next_page(self) -> list[StoredMessage]:
        """What arrived for the outstanding request; waits for at least one message or its end."""
        if self.sub is None:
            await self._create()
        if self.outstanding == 0 and not self.page:
            await self._pull()
        while not self.page and self.outstanding and not self.failed:
            self.arrived.clear()
            wait = self.requested_at + self.expires + 2.0 - asyncio.get_running_loop().time()
            try:
                # asyncio.timeout, not wait_for: on Python 3.11, wait_for can swallow a
                # cancellation that arrives as the event is set, and the follower then
                # kept reconnecting to a server that was gone instead of stopping.
                async with asyncio.timeout(max(wait, 0.01)):
                    await self.arrived.wait()
            except TimeoutError:
                # Neither messages nor the server's end-of-request status: the consumer
                # is gone (a server restart) or the connection dropped.
                self.failed = True
        page, self.page = self.page, []
        if self.failed:
            await self._recreate()
        return page

    async def _on_message(self, msg: Msg) -> None:
        headers = msg.headers
        status = headers.get(STATUS) if headers else None
        if status is not None:
            if status == "100":
                return  # heartbeat
            self.outstanding = 0
            # 404/408: the request ended empty or expired; anything else (409: consumer
            # deleted, leadership change, ...) means following again from here.
            self.failed = status not in ("404", "408")
            self.arrived.set()
            return
        self.outstanding -= 1
        seq = _stream_seq(msg.reply)
        if seq >= self.next_seq:
            message = StoredMessage(seq=seq, subject=msg.subject, data=msg.data, headers=headers or {})
            self.page.append(message)
            self.next_seq = seq + 1
            if len(self.page) == 1 or not self.outstanding:
                self.arrived.set()

    async def _create(self) -> None:
        self.failed = False
        self.outstanding = 0
        self.page = []
        inbox = self.nc.new_inbox()
        self.sub = await self.nc.subscribe(inbox, cb=self._on_message)
        config = {
            "stream_name": self.stream,
            "config": {
                "deliver_policy": "by_start_sequence",
                "opt_start_seq": self.next_seq,
                "ack_policy": "none",
                "filter_subject": self.subject,
                "inactive_threshold": 30_000_000_000,
                "mem_storage": True,
                "num_replicas": 1,
                "max_waiting": 1,
            },
        }
        api = f"$JS.API.CONSUMER.CREATE.{self.stream}"
        try:
            reply = await self.nc.request(api, msgspec.json.encode(config), timeout=self.timeout)
        except (NatsTimeoutError, NoRespondersError, OutboundBufferLimitError) as exc:
            await self.close()
            raise StoreUnavailable(f"cannot follow the stream: {type(exc).__name__}") from exc
        created = msgspec.json.decode(reply.data, type=ConsumerCreated)
        if created.error is not None:
            await self.close()
            raise StoreUnavailable(f"cannot follow the stream: {created.error.description}")
        self.consumer = created.name
        self.inbox = inbox

    async def _pull(self) -> None:
        request = {"batch": self.batch, "expires": int(self.expires * 1e9)}
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.consumer}"
        self.outstanding = self.batch
        self.requested_at = asyncio.get_running_loop().time()
        await self.nc.publish(subject, msgspec.json.encode(request), reply=self.inbox)

    async def _recreate(self) -> None:
        await self.close()
        while True:
            try:
                await self._create()
                return
            except StoreUnavailable:
                stop_if_cancelled()
                await asyncio.sleep(0.5)

    async def close(self) -> None:
        """Drop the subscription and delete the consumer (the server would after 30 s idle)."""
        sub, self.sub = self.sub, None
        consumer, self.consumer = self.consumer, ""
        self.outstanding = 0
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if consumer and self.nc.is_connected:
            with contextlib.suppress(Exception):
                await self.nc.publish(f"$JS.API.CONSUMER.DELETE.{self.stream}.{consumer}", b"")


def stop_if_cancelled() -> None:
    """Raise ``CancelledError`` when the current task was asked to stop.

    For retry loops: on Python 3.11, ``asyncio.wait_for`` (which nats-py's requests use)
    can turn a cancellation that coincides with its timeout into ``TimeoutError``, and a
    loop retrying on that error would never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _stream_seq(reply: str) -> int:
    # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>, or
    # the v2 form with domain and account hash after ACK (and possibly a trailing token).
    tokens = reply.split(".")
    return int(tokens[5] if len(tokens) == 9 else tokens[7])
