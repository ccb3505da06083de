"""The monthly refresh: when a month begins (server time), refresh every member.

``RefreshCredits`` is idempotent per member and month and its command id is
derived from both, so several instances, restarts and a run interrupted
half-way all converge on one refresh per member and month. The month last
completed is remembered in a KV bucket so a restart does not walk every
member again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime

import msgspec
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from contracts import subjects
from contracts.commands import RefreshCredits
from contracts.replies import Failure
from contracts.types import month_of, month_start, next_month
from eventstore import JetStreamEventStore, stop_if_cancelled
from services.executor import Clock, CommandExecutor, system_clock

log = logging.getLogger("inmail.scheduler")

BUCKET = "INMAIL_SCHEDULER"
DONE_KEY = "refresh.done"


class _SubjectPage(msgspec.Struct):
    total: int = 0
    offset: int = 0
    limit: int = 0
    state: _State | None = None


class _State(msgspec.Struct):
    subjects: dict[str, int] | None = None


async def member_ids(store: JetStreamEventStore) -> AsyncIterator[str]:
    """Every member with events, from the stream's own subject index (paged)."""
    offset = 0
    api = f"$JS.API.STREAM.INFO.{store.spec.name}"
    while True:
        request = {"subjects_filter": f"{subjects.MEMBER_EVENTS_PREFIX}*", "offset": offset}
        reply = await store.nc.request(api, msgspec.json.encode(request), timeout=store.timeout)
        page = msgspec.json.decode(reply.data, type=_SubjectPage)
        names = list((page.state.subjects if page.state else None) or {})
        for subject in names:
            yield subjects.member_of_subject(subject)
        offset += len(names)
        if not names or offset >= page.total:
            return


class MonthlyRefresh:
    """Runs the refresh of the current month once, then sleeps until the next one begins."""

    def __init__(
        self,
        executor: CommandExecutor,
        store: JetStreamEventStore,
        *,
        clock: Clock = system_clock,
        concurrency: int = 32,
        check_every: float = 60.0,
        replicas: int = 1,
    ) -> None:
        self.executor = executor
        self.store = store
        self.clock = clock
        self.replicas = replicas
        self.concurrency = concurrency
        self.check_every = check_every

    async def run(self) -> None:
        """Forever: refresh a month not yet done, then wait for the next one."""
        kv = await self._bucket()
        while True:
            month = month_of(self.clock())
            try:
                if await _done_month(kv) != month:
                    await self.refresh_month(month)
                    await kv.put(DONE_KEY, month.encode())
            except asyncio.CancelledError:
                raise
            except Exception:
                # Retried at the next check; each member's refresh is idempotent.
                log.exception("monthly refresh of %s failed; will retry", month)
            # A stop that arrived while a request was finishing may have been swallowed by
            # wait_for (Python 3.11): without this check the task would sleep on, unstoppable.
            stop_if_cancelled()
            await asyncio.sleep(
                _seconds_until(month_start(next_month(month)), self.clock(), self.check_every)
            )

    async def refresh_month(self, month: str) -> int:
        """Refresh every member for ``month``; returns how many refreshes failed."""
        failures = 0
        count = 0
        gate = asyncio.Semaphore(self.concurrency)
        running: set[asyncio.Task[None]] = set()

        async def refresh(member_id: str) -> None:
            nonlocal failures
            try:
                reply = await self.executor.execute(
                    RefreshCredits(
                        command_id=refresh_command_id(month, member_id),
                        member_id=member_id,
                        month=month,
                    )
                )
            finally:
                gate.release()
            # An erased member keeps the credits they had and gets no more (section 11).
            if isinstance(reply, Failure) and reply.error.code != "MEMBER_ERASED":
                failures += 1
                log.warning("refresh of %s for %s: %s", member_id, month, reply.error.message)

        async for member_id in member_ids(self.store):
            await gate.acquire()
            task = asyncio.create_task(refresh(member_id))
            running.add(task)
            task.add_done_callback(running.discard)
            count += 1
        await asyncio.gather(*running)
        log.info("refreshed %d members for %s (%d failed)", count, month, failures)
        if failures:
            raise RuntimeError(f"{failures} refreshes failed for {month}")
        return failures

    async def _bucket(self) -> KeyValue:
        return await ensure_bucket(self.store.js, self.replicas)


async def ensure_bucket(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    """The scheduler's bucket, created with ``replicas`` when missing (an existing one is used as is)."""
    try:
        return await js.key_value(BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(bucket=BUCKET, history=1, replicas=replicas)


def refresh_command_id(month: str, member_id: str) -> str:
    """The scheduler's command id for one member and month: the same in every instance."""
    command_id = f"refresh-{month}-{member_id}"
    if len(command_id) > 64:
        command_id = f"refresh-{month}-{hashlib.sha256(member_id.encode()).hexdigest()[:40]}"
    return command_id


async def _done_month(kv: KeyValue) -> str | None:
    try:
        entry = await kv.get(DONE_KEY)
    except KeyNotFoundError:
        return None
    return entry.value.decode() if entry.value else None


def _seconds_until(moment: datetime, now: datetime, at_most: float) -> float:
    return max(0.0, min(at_most, (moment - now).total_seconds()))
