"""eventsourcing's aggregate, application and process recorders on JetStream, and the subscription.

They add the library's interfaces to ``StoreRecorder``, which does the work.
``JetStreamProcessRecorder`` records events and position atomically: a JetStream atomic
batch can only span one stream, so the position is a message on
``es.<stream>.tracking.<application>`` in the process application's own stream, written
in the same batch as the events and checked with the same expected-sequence header (a
position can be neither lost nor recorded twice). Its notification ids are therefore
the stream sequences of its events, increasing but not contiguous: tracking messages
take sequences too, and reads skip them (events match ``es.<stream>.*``, tracking
subjects have one more token).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    Notification,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    Tracking,
)

from eventstore import StoredMessage
from eventstore.eventsourcing.bridge import BridgeClosed
from eventstore.eventsourcing.calls import FAILURES, translate
from eventstore.eventsourcing.store_recorder import StoreRecorder


class JetStreamAggregateRecorder(StoreRecorder, AggregateRecorder):
    """Stored events (or snapshots) of aggregates, one subject per aggregate."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Append the events atomically; IntegrityError if any aggregate moved on."""
        self._insert(stored_events)
        return None

    def _insert(
        self, stored_events: Sequence[StoredEvent], tracking: Tracking | None = None
    ) -> list[int]:
        groups = self._event_groups(stored_events)
        if tracking is not None:
            groups.append(self._tracking_group(tracking))
        if not groups:
            return []
        return self._call(self._append(groups, len(stored_events)))

    def select_events(
        self,
        originator_id: uuid.UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """An aggregate's stored events, filtered by version, oldest first unless ``desc``."""
        return self._call(self._select_events(originator_id, gt, lte, desc, limit))


class JetStreamApplicationRecorder(JetStreamAggregateRecorder, ApplicationRecorder):
    """Stored events with notification ids: the stream sequences of an application's stream."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Append the events atomically and return their notification ids."""
        return self._insert(stored_events)

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """Up to ``limit`` notifications from ``start`` (to ``stop``), optionally of some topics."""
        if limit <= 0:
            return []
        return self._call(
            self._select_notifications(start, limit, stop, topics, inclusive_of_start)
        )

    def max_notification_id(self) -> int | None:
        """The last notification id, or None when nothing is recorded."""
        return self._call(self._max_notification_id())

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        """Notifications after ``gt``, then new ones as they are recorded (a JetStream consumer)."""
        return JetStreamSubscription(self, gt=gt, topics=topics)


class JetStreamProcessRecorder(JetStreamApplicationRecorder, ProcessRecorder):
    """Events and the upstream position in one atomic batch on the application's stream."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Append the events and, with ``tracking=``, the position, all or nothing."""
        tracking: Tracking | None = kwargs.get("tracking")
        return self._insert(stored_events, tracking)

    def insert_tracking(self, tracking: Tracking) -> None:
        """Record a position with no events; IntegrityError unless it is past the last one."""
        self._insert([], tracking)

    def max_tracking_id(self, application_name: str) -> int | None:
        """The last position recorded for ``application_name``, or None."""
        return self._call(self._max_tracking_id(application_name))


class JetStreamSubscription(Subscription[JetStreamApplicationRecorder]):
    """Notifications from an ordered JetStream consumer; ``stop()`` ends it from any thread."""

    def __init__(
        self,
        recorder: JetStreamApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._messages = recorder._follow(gt)
        self._wanted_topics = frozenset(topics)
        self._waiting: concurrent.futures.Future[StoredMessage] | None = None
        self._guard = threading.Lock()

    def __next__(self) -> Notification:
        while True:
            with self._guard:
                if self._has_been_stopped:
                    raise StopIteration
                waiting = self._waiting = self._recorder.bridge.submit(
                    _next_message(self._messages)
                )
            try:
                message = waiting.result()
            except (concurrent.futures.CancelledError, StopAsyncIteration, BridgeClosed):
                raise StopIteration from None
            except FAILURES as exc:
                raise translate(exc) from exc
            finally:
                with self._guard:
                    self._waiting = None
            notification = self._recorder._notification(message)
            self._last_notification_id = notification.id
            if not self._wanted_topics or notification.topic in self._wanted_topics:
                return notification

    def stop(self) -> None:
        """Stop the subscription; a ``__next__`` waiting in another thread returns at once."""
        with self._guard:
            super().stop()
            waiting = self._waiting
        if waiting is not None:
            # Cancelling the wait cancels the consumer's task; the generator closes itself.
            waiting.cancel()
            return
        with contextlib.suppress(BridgeClosed, RuntimeError):
            self._recorder.bridge.submit(self._messages.aclose())


async def _next_message(messages: AsyncIterator[StoredMessage]) -> StoredMessage:
    return await anext(messages)
