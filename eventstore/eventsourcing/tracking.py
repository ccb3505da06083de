"""The tracking recorder: positions in upstream applications, in a KV bucket.

``JetStreamTrackingRecorder`` keeps one position per upstream application in a KV
bucket (``<stream>_tracking``), moved forward by compare-and-set. Nothing else can be
written atomically with a KV key, so a view that keeps its own state elsewhere gets
at-least-once processing from it, not exactly-once; ``JetStreamProcessRecorder``
records events and position atomically instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from eventsourcing.persistence import IntegrityError, ProgrammingError, Tracking, TrackingRecorder
from nats.js import api as js_api
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from eventstore.eventsourcing.bridge import NatsBridge
from eventstore.eventsourcing.calls import MAX_ATTEMPTS, call
from eventstore.eventsourcing.layout import encode_token, is_valid_stream_name

T = TypeVar("T")


class JetStreamTrackingRecorder(TrackingRecorder):
    """Positions in upstream applications, one KV key each, moved forward by compare-and-set."""

    def __init__(
        self, bridge: NatsBridge, bucket: str, *, replicas: int = 1, create_bucket: bool = True
    ) -> None:
        if not is_valid_stream_name(bucket):
            raise ProgrammingError(f"not a usable KV bucket name: {bucket!r}")
        self.bridge = bridge
        self.bucket = bucket
        self.replicas = replicas
        self.create_bucket = create_bucket
        self._kv: KeyValue | None = None
        self._kv_lock = asyncio.Lock()
        if create_bucket:
            self._call(self._get_kv())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return call(self.bridge, coro)

    def insert_tracking(self, tracking: Tracking) -> None:
        """Record a position; IntegrityError unless it is past the last one recorded."""
        self._call(self._insert_tracking(tracking))

    def max_tracking_id(self, application_name: str) -> int | None:
        """The last position recorded for ``application_name``, or None."""
        return self._call(self._max_tracking_id(application_name))

    async def _get_kv(self) -> KeyValue:
        async with self._kv_lock:
            if self._kv is None:
                js = (await self.bridge.connection()).jetstream()
                try:
                    self._kv = await js.key_value(self.bucket)
                except BucketNotFoundError:
                    if not self.create_bucket:
                        raise
                    self._kv = await js.create_key_value(
                        js_api.KeyValueConfig(
                            bucket=self.bucket,
                            history=1,
                            replicas=self.replicas,
                            storage=js_api.StorageType.FILE,
                        )
                    )
            return self._kv

    async def _entry(self, kv: KeyValue, key: str) -> KeyValue.Entry | None:
        try:
            return await kv.get(key)
        except KeyNotFoundError:
            return None

    async def _max_tracking_id(self, application_name: str) -> int | None:
        entry = await self._entry(await self._get_kv(), encode_token(application_name))
        return None if entry is None or entry.value is None else int(entry.value)

    async def _insert_tracking(self, tracking: Tracking) -> None:
        kv = await self._get_kv()
        key = encode_token(tracking.application_name)
        value = str(tracking.notification_id).encode()
        for _ in range(MAX_ATTEMPTS):
            entry = await self._entry(kv, key)
            if entry is not None and entry.value is not None:
                recorded = int(entry.value)
                if tracking.notification_id <= recorded:
                    raise IntegrityError(
                        f"{tracking.application_name}: position {tracking.notification_id} "
                        f"is not after the recorded {recorded}"
                    )
            try:
                if entry is None:
                    await kv.create(key, value)
                else:
                    await kv.update(key, value, last=entry.revision)
            except KeyWrongLastSequenceError:
                continue  # another writer moved it: decide again on its value
            return
        raise IntegrityError(
            f"gave up after {MAX_ATTEMPTS} attempts: other writers kept moving "
            f"the position of {tracking.application_name}"
        )
