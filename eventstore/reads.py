"""The store's reads: an aggregate's messages, by sequence, the last ones, and following the stream.

Reads of stored messages are batch direct gets (no consumer, answered from the
stream's indexes); following the stream is a pull consumer (``eventstore.follow``).
On a replicated stream any replica answers a direct get, and a replica may not hold
yet what the leader has just acknowledged (it applies an entry once it learns the
entry is committed): ``confirmed_*`` ask the leader (``STREAM.MSG.GET``) instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError, OutboundBufferLimitError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from eventstore.errors import StoreUnavailable
from eventstore.follow import PullFollower
from eventstore.messages import StoredMessage
from eventstore.replies import SharedReplies
from eventstore.spec import StreamSpec
from eventstore.wire import STATUS


class StreamReads(SharedReplies):
    """What the store reads; the base of ``JetStreamEventStore``, which adds the writes."""

    def __init__(self, nc: NATS, spec: StreamSpec, timeout: float, read_batch: int) -> None:
        super().__init__(nc, spec, timeout)
        self.read_batch = read_batch
        self.js = nc.jetstream(timeout=timeout)

    async def read_subject(
        self, subject: str, *, after: int = 0, limit: int | None = None
    ) -> list[StoredMessage]:
        """An aggregate's messages with sequence > ``after``, by batch direct get (no consumer)."""
        result: list[StoredMessage] = []
        start = after + 1
        while True:
            want = self.read_batch if limit is None else min(self.read_batch, limit - len(result))
            if want <= 0:
                return result
            page, pending = await self._direct_batch(
                {"batch": want, "seq": start, "next_by_subj": subject}
            )
            result.extend(page)
            if not page or pending == 0:
                return result
            start = page[-1].seq + 1

    async def last_seq_of(self, subject: str) -> int:
        """The sequence of the last message on ``subject`` (0 when there is none).

        The cheap way to ask "is anything newer than what I hold?": the server answers
        from its per-subject index. ``read_subject`` from a sequence instead scans the
        stream's blocks after it for the subject, and a catch-up that finds nothing
        still pays that scan: measured, it kept the nats-server at a full core under
        1,000 SendInMail/s once the blocks after the recipients' last events had left
        its cache (``docs/benchmarks.md``).
        """
        page, _ = await self._direct_batch({"multi_last": [subject], "batch": 1})
        return page[-1].seq if page else 0

    async def read_range(
        self, start: int, *, filter_subject: str | None = None, limit: int | None = None
    ) -> list[StoredMessage]:
        """Up to ``limit`` (default one read batch) stored messages from sequence ``start`` on."""
        request: dict[str, Any] = {"batch": limit or self.read_batch, "seq": start}
        request["next_by_subj"] = filter_subject or ">"
        page, _ = await self._direct_batch(request)
        return page

    async def get(self, seq: int) -> StoredMessage | None:
        """One message by stream sequence, or None when there is none (deleted, or beyond the end)."""
        page, _ = await self._direct_batch({"batch": 1, "seq": seq})
        return page[0] if page and page[0].seq == seq else None

    async def confirmed_last_seq_of(self, subject: str) -> int:
        """The sequence of the last message on ``subject`` as the stream's leader holds it."""
        found = await self._leader_get(subject=subject)
        return found.seq if found is not None else 0

    async def confirmed_get(self, seq: int) -> StoredMessage | None:
        """One message by stream sequence as the stream's leader holds it (None: none)."""
        return await self._leader_get(seq=seq)

    async def _leader_get(
        self, *, seq: int | None = None, subject: str | None = None
    ) -> StoredMessage | None:
        try:
            raw = await self.js.get_msg(self.spec.name, seq=seq, subject=subject)
        except NotFoundError:
            return None
        except (NatsTimeoutError, TimeoutError, NoRespondersError, OutboundBufferLimitError) as exc:
            raise StoreUnavailable(f"event store read failed: {type(exc).__name__}") from exc
        headers = {k: v for k, v in (raw.headers or {}).items() if isinstance(v, str)}
        return StoredMessage(
            seq=raw.seq or 0, subject=raw.subject or "", data=raw.data or b"", headers=headers
        )

    async def last_message(self, subject: str) -> StoredMessage | None:
        """The last stored message on ``subject`` (wildcards allowed), or None when there is none."""
        # A single direct get answers with the message itself or a status, never an end marker,
        # so it cannot go through the batch reader.
        try:
            reply = await self.nc.request(
                self._direct_subject,
                msgspec.json.encode({"last_by_subj": subject}),
                timeout=self.timeout,
            )
        except (OutboundBufferLimitError, NoRespondersError, TimeoutError) as exc:
            raise StoreUnavailable(f"event store read failed: {type(exc).__name__}") from exc
        headers = reply.headers or {}
        status = headers.get(STATUS)
        if status == "404":
            return None
        if status:
            raise StoreUnavailable(f"event store read failed with status {status}")
        return StoredMessage(
            seq=int(headers["Nats-Sequence"]),
            subject=headers["Nats-Subject"],
            data=reply.data,
            headers=headers,
        )

    async def last_seq(self) -> int:
        """The stream's last sequence (0 when empty)."""
        try:
            info = await self.js.stream_info(self.spec.name)
        except (NatsTimeoutError, NoRespondersError, OutboundBufferLimitError) as exc:
            raise StoreUnavailable(f"stream info unavailable: {type(exc).__name__}") from exc
        return int(info.state.last_seq)

    async def stream_info(self) -> js_api.StreamInfo:
        """The stream's configuration and state, as the server reports them."""
        return await self.js.stream_info(self.spec.name)

    async def follow(
        self, start: int = 1, *, filter_subject: str | None = None, until: int | None = None
    ) -> AsyncGenerator[StoredMessage, None]:
        """Messages from ``start`` in stream order, live; see ``follow_batches``."""
        pages = self.follow_batches(start, filter_subject=filter_subject, until=until)
        async with contextlib.aclosing(pages):
            async for page in pages:
                for message in page:
                    yield message

    async def follow_batches(
        self,
        start: int = 1,
        *,
        filter_subject: str | None = None,
        until: int | None = None,
        batch: int = 1000,
        expires: float = 2.0,
    ) -> AsyncGenerator[list[StoredMessage], None]:
        """Stored messages from ``start`` on, in stream order, live, in pages of at most ``batch``.

        Through an ephemeral pull consumer with one pull request outstanding at a
        time: the server sends only what was asked for, so a slow reader never
        overflows a buffer and loses messages (a push consumer would keep pushing,
        and nats-py drops what its pending queue cannot hold). Core-NATS
        subscribers also see messages of batches that were then rejected; a
        consumer sees only what the stream stored. Ends after ``until`` if given.
        A consumer lost to a server restart is created again where it stopped.
        """
        if until is not None and until < start:
            return
        subject = filter_subject or _all_subjects(self.spec)
        follower = PullFollower(
            self.nc, self.spec.name, self.timeout, max(start, 1), subject, batch, expires
        )
        try:
            while True:
                page = await follower.next_page()
                if until is not None and page and page[-1].seq >= until:
                    yield [m for m in page if m.seq <= until]
                    return
                if page:
                    yield page
        finally:
            await follower.close()


def _all_subjects(spec: StreamSpec) -> str:
    return spec.subjects[0] if len(spec.subjects) == 1 else ">"
