"""Performing due work: the log folded into the index, each item run as a command with a derived id.

One task follows ``INMAIL_EVENTS`` from sequence 1 into the ``DueIndex`` and has
the ``Notifier`` publish each page's email alerts. Items are performed through
the ``CommandExecutor`` like any command, one member at a time in due order (an
item can make another of the same member due: a delivery plans its follow-up,
a follow-up may complete a period), members side by side (no item reads what
another member's item writes).

Without trusted client time the server's clock drives it: whatever is due now is
performed, then the loop sleeps until the next item is due or the log brings an
earlier one. Under trusted client time only ``RunDue`` performs work, each item
at its due time. Several instances may run this at once: the first append wins,
the others find the receipt (or the outcome) and record nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from datetime import datetime, timedelta

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from contracts import replies
from contracts.commands import RunDue
from contracts.events import decode_event
from contracts.replies import CommandOk, Failure, RunDueData
from eventstore import JetStreamEventStore, OutcomeUnknown, StoredMessage
from services.due.index import Alert, DueIndex
from services.due.items import DueItem
from services.due.notifier import Notifier
from services.executor import Clock, CommandExecutor, system_clock
from services.monthly_refresh import ensure_bucket

log = logging.getLogger("inmail.due")


class _RunDueReceipt(msgspec.Struct, frozen=True):
    data: RunDueData
    seq: int


class DueWork:
    """Keeps the index of due work from the log and performs what is due."""

    def __init__(
        self,
        executor: CommandExecutor,
        events: JetStreamEventStore,
        notifier: Notifier | None = None,
        *,
        trust_client_time: bool = False,
        clock: Clock = system_clock,
        check_every: float = 5.0,
        concurrency: int = 32,
        catch_up_timeout: float = 30.0,
    ) -> None:
        self.executor = executor
        self.events = events
        self.notifier = notifier
        self.trust_client_time = trust_client_time
        self.clock = clock
        self.check_every = check_every
        self.concurrency = concurrency
        self.catch_up_timeout = catch_up_timeout
        self.index = DueIndex()
        self._advanced = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._run_due = asyncio.Lock()
        self._receipts: KeyValue | None = None

    async def start(self) -> None:
        """Fold the log so far, then follow it; without trusted time, start performing."""
        if self.notifier is not None:
            await self.notifier.start()
        self._receipts = await ensure_bucket(self.events.js)
        target = await self.events.last_seq()
        self._tasks.append(asyncio.create_task(self._follow(), name="due-work-index"))
        # However long the log: work is performed only from a complete index.
        await self._folded(target)
        if not self.trust_client_time:
            self._tasks.append(asyncio.create_task(self._perform_forever(), name="due-work"))
        log.info("due work: %d pending as of seq %d", self.index.pending(), self.index.position)

    async def stop(self) -> None:
        """Stop following and performing (an item in flight is left to its command's own fate)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.notifier is not None:
            with contextlib.suppress(Exception):
                await self.notifier.save()

    def pending(self) -> int:
        """Due work not performed yet (``inmail_scheduled_pending``)."""
        return self.index.pending()

    async def caught_up(self, seq: int) -> None:
        """Wait until the index has folded the log up to ``seq`` (at most ``catch_up_timeout``)."""
        async with asyncio.timeout(self.catch_up_timeout):
            await self._folded(seq)

    async def _folded(self, seq: int) -> None:
        async with self._advanced:
            await self._advanced.wait_for(lambda: self.index.position >= seq)

    async def run_due(self, command: RunDue) -> CommandOk | Failure:
        """RunDue: everything due at or before ``until``, in due order, each at its due time."""
        assert self._receipts is not None, "started"
        key = f"rundue.{command.command_id}"
        with contextlib.suppress(KeyNotFoundError):
            entry = await self._receipts.get(key)
            done = msgspec.json.decode(entry.value or b"", type=_RunDueReceipt)
            return CommandOk(data=done.data, seq=done.seq)
        async with self._run_due:
            try:
                await self.caught_up(await self.events.last_seq())
            except TimeoutError:
                return replies.failure("UNAVAILABLE", "the due work index is behind the stream; retry")
            performed, outcomes, failure = await self.perform_until(command.until, stamp=True)
            if failure is not None:
                return failure
            data = RunDueData(performed, dict(sorted(outcomes.items())))
            receipt = _RunDueReceipt(data, self.index.position)
            await self._receipts.put(key, msgspec.json.encode(receipt))
            return CommandOk(data=receipt.data, seq=receipt.seq)

    async def perform_until(
        self, until: datetime, *, stamp: bool
    ) -> tuple[int, Counter[str], Failure | None]:
        """Perform every item due at or before ``until``; how many wrote, what they did, a failure."""
        performed = 0
        outcomes: Counter[str] = Counter()
        failures: list[Failure] = []
        stuck: set[str] = set()
        gate = asyncio.Semaphore(self.concurrency)

        async def chain(member_id: str) -> None:
            nonlocal performed
            async with gate:
                while (item := self.index.next_for(member_id, until)) is not None and item.key not in stuck:
                    outcome = await self._perform(item, stamp=stamp)
                    if isinstance(outcome, Failure):
                        stuck.add(item.key)
                        failures.append(outcome)
                        return
                    if outcome is not None:
                        performed += 1
                        outcomes[outcome] += 1

        while members := [m for m in self.index.members_due(until) if not self._stuck(m, until, stuck)]:
            await asyncio.gather(*(chain(member_id) for member_id in members))
        return performed, outcomes, failures[0] if failures else None

    def _stuck(self, member_id: str, until: datetime, stuck: set[str]) -> bool:
        item = self.index.next_for(member_id, until)
        return item is None or item.key in stuck

    async def _perform(self, item: DueItem, *, stamp: bool) -> str | Failure | None:
        """Run one item's command; what it did (None: it was already done), or why it failed."""
        before = self.index.position
        self.index.watch(item.key)
        try:
            reply = await self.executor.execute(item.stamped() if stamp else item.command)
            if isinstance(reply, Failure):
                log.warning("due work %s: %s %s", item.key, reply.error.code, reply.error.message)
                return reply
            await self.caught_up(reply.seq)
        except (OutcomeUnknown, TimeoutError) as exc:
            return replies.failure("UNAVAILABLE", f"due work {item.key}: {exc or type(exc).__name__}")
        finally:
            outcome = self.index.outcome(item.key)
        if self.index.is_pending(item.key):
            # Answered without resolving the item: performing it again would loop for ever.
            log.error("due work %s is still pending after its command answered", item.key)
            return replies.failure("UNAVAILABLE", f"due work {item.key} could not be completed")
        # A command that found its effect recorded already answers with an older sequence.
        return outcome if reply.seq > before else None

    async def _perform_forever(self) -> None:
        """The server's clock drives the work: perform what is due, sleep until the next is."""
        while True:
            try:
                await self.perform_until(self.clock(), stamp=False)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("due work failed; will retry")
            await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        now = self.clock()
        wake_at = now + timedelta(seconds=self.check_every)
        next_due = self.index.next_due()
        if next_due is not None:
            wake_at = max(now, min(wake_at, next_due))

        def earlier_work() -> bool:
            # The log may bring an item due before the planned wake-up (a schedule for now).
            due = self.index.next_due()
            return due is not None and due < wake_at

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout((wake_at - now).total_seconds()), self._advanced:
                await self._advanced.wait_for(earlier_work)

    async def _follow(self) -> None:
        """Fold the log into the index for ever, following again after a failure."""
        while True:
            try:
                pages = self.events.follow_batches(self.index.position + 1)
                async with contextlib.aclosing(pages):
                    async for page in pages:
                        alerts = [alert for message in page if (alert := self._fold(message)) is not None]
                        if self.notifier is not None:
                            await self._notify(alerts, page[-1].seq)
                        async with self._advanced:
                            self._advanced.notify_all()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following the log for due work failed; following again")
                await asyncio.sleep(1.0)

    def _fold(self, message: StoredMessage) -> Alert | None:
        try:
            event = decode_event(message.data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            # Not ours to stop on: the projections quarantine it, the member's commands refuse.
            log.warning("due work skips the unreadable event at seq %d: %s", message.seq, exc)
            self.index.position = message.seq
            return None
        return self.index.apply(message.seq, event)

    async def _notify(self, alerts: list[Alert], through: int) -> None:
        assert self.notifier is not None
        delay = 0.1
        while True:
            try:
                await self.notifier.publish(alerts, through)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Already published ones are dropped as duplicates when sent again.
                log.warning("email alerts up to seq %d not published (%s); retrying", through, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
