"""The events stream the service writes is the one it recorded: at start, and every second after.

``INMAIL_EVENTS`` is the product's truth. If it is deleted and created again,
purged, or restored from an older backup, everything built on it (the command
side's aggregates, the read models) describes a history the stream no longer
holds. So the service records the stream's identity (``eventstore.identity``) in
a small bucket of its own, ``INMAIL_IDENTITY``, where every process finds it
(a ``--role commands`` process has no read models to ask), and:

- at start, refuses in one line a stream that is not the recorded one, or that
  is gone while the record or the read models say there was one, instead of
  creating a fresh empty stream; ``inmail serve --new-stream`` starts over
  deliberately from the stream as it is (created when missing);
- while running, makes the event store refuse every append from the moment the
  stream stops being the recorded one (and the store itself refuses once an
  append is acknowledged at a sequence that went back): no command is
  acknowledged until the operator starts over.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import msgspec
from nats.aio.client import Client as NATS
from nats.js import api as js_api
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from eventstore import Followed, JetStreamEventStore, first_kept, identity_of, replacements, watch
from inmail.streams import IDENTITY_BUCKET

log = logging.getLogger("inmail.service")

BUCKET = IDENTITY_BUCKET
"""Key: a stream's name; value: the identity of the stream the service writes under that name."""


class StreamRefused(Exception):
    """The events stream is not the one the service recorded; one line for the operator."""


class _Record(msgspec.Struct, frozen=True):
    identity: str
    from_seq: int


class StreamGuard:
    """Checks the events stream against the service's record of it."""

    def __init__(
        self, nc: NATS, events: JetStreamEventStore, *, replicas: int = 1, every: float = 1.0
    ) -> None:
        self.nc = nc
        self.events = events
        self.replicas = replicas
        self.every = every
        self.followed: Followed | None = None

    async def open(
        self, read_models: Mapping[str, Followed], *, new_stream: bool = False
    ) -> js_api.StreamInfo:
        """The events stream, checked against the record and the read models (and created when
        nothing says there was one, or with ``new_stream``); records what is followed from now on."""
        kv = await self._bucket()
        recorded = await _recorded(kv, self.events.spec.name)
        info = await self.events.info_or_none()
        followed = dict(read_models)
        if recorded is not None:
            followed["the service's record"] = Followed(recorded.identity, recorded.from_seq)
        problems = replacements(self.events.spec.name, info, followed)
        if problems and not new_stream:
            raise StreamRefused(
                f"{max(problems.values(), key=len)}. Refusing to start on it: to start over from the "
                "stream as it is now (created when missing, read models rebuilt from it), "
                "run `inmail serve --new-stream`"
            )
        if problems:
            log.warning("starting over on the stream as it is now: %s", "; ".join(set(problems.values())))
        info = await self.events.ensure_stream()
        self.followed = Followed(identity_of(info), first_kept(info))
        current = _Record(self.followed.identity or "", self.followed.from_seq)
        if current != recorded:
            await kv.put(self.events.spec.name, msgspec.json.encode(current))
        return info

    async def watch(self) -> None:
        """Forever: once the stream is not the recorded one, the event store refuses every append."""
        followed = self.followed
        if followed is None:
            raise RuntimeError("the stream guard is not open")

        def seen() -> dict[str, Followed]:
            return {"commands": Followed(followed.identity, followed.from_seq, self.events.acked_seq)}

        async def refuse(found: dict[str, str]) -> None:
            if self.events.replaced is None:
                reason = next(iter(found.values()))
                log.error("%s; no command is acknowledged until the operator starts over", reason)
                self.events.refuse(reason)

        await watch(self.events.spec.name, self.events.info_or_none, seen, refuse, self.every)

    async def _bucket(self) -> KeyValue:
        js = self.nc.jetstream()
        try:
            return await js.key_value(BUCKET)
        except BucketNotFoundError:
            return await js.create_key_value(bucket=BUCKET, history=1, replicas=self.replicas)


async def _recorded(kv: KeyValue, stream: str) -> _Record | None:
    try:
        entry = await kv.get(stream)
    except KeyNotFoundError:
        return None
    return msgspec.json.decode(entry.value, type=_Record) if entry.value else None
