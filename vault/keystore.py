"""Per-member data keys: wrapped in KV bucket ``INMAIL_KEYS``, unwrapped by a key kept in files.

Why two levels. A KV entry that is deleted or overwritten keeps its bytes in the
stream's block files until compaction, in the raft log of every replica, and in
every backup taken before: destroying a data key stored in NATS cannot be made
sure. So data keys (DEKs) are stored in the bucket only *wrapped* by a
key-encryption key (KEK) that never enters NATS: it lives in a file of the key
folder (``--key-dir``, 0700, files 0600). Members fall into ``SHARDS`` shards (a
hash of the id), each with a KEK of its own. Erasing a member overwrites its entry
with a tombstone, then *rotates* its shard's KEK: a new KEK is made, every other
DEK of the shard is wrapped again under it, and the old KEK file is overwritten and
deleted. From then on no copy of the erased member's wrapped DEK (old block files,
replicas, backups) can be unwrapped by anyone, because the only KEK that could is
gone; the shard's other entries in those old copies are unreadable too, but their
current entries are wrapped under the new KEK. Sharding keeps an erasure's work to
its shard: about one member in ``SHARDS``.

Several processes (``--role commands`` and ``--role read`` on one or several
machines) share one bucket and one key folder (a shared volume). The bucket's
``kek`` entry names the current KEK; a rotation takes it over by compare-and-set,
so two rotations of a shard never interleave, and every re-wrap goes to the
KEK the entry names at that moment; a process meeting an entry wrapped under a KEK
it no longer finds reads the entry again (it was re-wrapped meanwhile). Each
process watches the bucket and forgets in memory the DEK of an erased member and
every KEK but the current one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
from pathlib import Path
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts import subjects
from vault.cipher import CannotOpen, decrypt, encrypt, new_key
from vault.kekfiles import KekFolder

log = logging.getLogger("inmail.keys")

KEK_PREFIX = "kek."
SEALED_FROM_ENTRY = "sealed-from"
"""The first sequence of ``INMAIL_EVENTS`` written with sealing: events before it are clear text."""
MEMBER_PREFIX = "m."
SHARDS = 64
"""Members per KEK: one in SHARDS. An erasure re-wraps the data keys of its shard only."""
REWRAP_IN_FLIGHT = 64
"""Data keys wrapped again at once during a rotation (each is a read and a compare-and-set)."""


class KeyStoreRefused(Exception):
    """The key folder does not hold the key-encryption key the bucket's keys are wrapped with."""


class MemberKeyErased(Exception):
    """The member was erased: their key is gone and no new one is made."""

    def __init__(self, member_id: str) -> None:
        self.member_id = member_id
        super().__init__(f"member {member_id} was erased")


class _Current(msgspec.Struct, frozen=True):
    kid: str


class _Entry(msgspec.Struct, frozen=True, omit_defaults=True):
    kid: str = ""
    key: str = ""
    erased: bool = False


class KeyStore:
    """Data keys per member, made on first use, destroyed on erasure; cached in memory."""

    def __init__(self, nc: NATS, key_dir: Path, *, replicas: int = 1) -> None:
        self.nc = nc
        self.key_dir = key_dir
        self.files = KekFolder(key_dir)
        self.replicas = replicas
        self._kv: KeyValue | None = None
        self._keks: dict[str, bytes] = {}
        self._deks: dict[str, bytes] = {}
        self._erased: set[str] = set()
        self._watch: asyncio.Task[None] | None = None
        self._watcher: Any = None
        self.sealed_from = 1
        """The first events sequence written with sealing (``open`` reads it)."""

    async def open(self, next_seq: int = 1) -> None:
        """Make the bucket and the key folder when missing; refuse a folder without the current KEK.

        ``next_seq`` is the events stream's next sequence: the first time the bucket is made,
        it records that every event before it was written before sealing existed.
        """
        self.files.prepare()
        js = self.nc.jetstream()
        try:
            self._kv = await js.key_value(subjects.KEYS_BUCKET)
        except BucketNotFoundError:
            self._kv = await js.create_key_value(
                bucket=subjects.KEYS_BUCKET, history=1, replicas=self.replicas
            )
        for shard in range(SHARDS):
            current = await self._current(shard)
            if current is None:
                kid = self._write_kek(new_key())
                try:
                    await self.kv.create(kek_entry(shard), msgspec.json.encode(_Current(kid)))
                except KeyWrongLastSequenceError:
                    # Another process made the shard's first KEK at the same time: theirs stands.
                    self.files.destroy(kid)
                    self._keks.pop(kid, None)
                current = await self._current_kid(shard)
            if self._kek(current) is None:
                raise KeyStoreRefused(
                    f"the data keys in bucket {subjects.KEYS_BUCKET} are wrapped by key-encryption key "
                    f"{current}, which {self.key_dir} does not hold: point --key-dir at the key folder "
                    "the other processes of this installation use"
                )
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self.kv.create(SEALED_FROM_ENTRY, str(next_seq).encode())
        self.sealed_from = int((await self.kv.get(SEALED_FROM_ENTRY)).value or b"1")
        self._watch = asyncio.create_task(self._follow(), name="key-store-watch")

    async def close(self) -> None:
        """Stop following the bucket and forget every key held in memory."""
        if self._watch is not None:
            # Cancelled again until it ends: on Python 3.11 a nats-py request (asyncio.wait_for)
            # swallows a cancellation arriving as its answer does, and the watch would go on.
            while not self._watch.done():
                self._watch.cancel()
                await asyncio.wait({self._watch}, timeout=1.0)
            self._watch = None
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()
            self._watcher = None
        self._keks.clear()
        self._deks.clear()

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("the key store is not open")
        return self._kv

    async def data_key(self, member_id: str) -> bytes | None:
        """The member's data key; None when erased (or never made: no token can name it)."""
        dek = self._deks.get(member_id)
        if dek is not None:
            return dek
        if member_id in self._erased:
            return None
        return await self._load(member_id)

    async def data_key_for_writing(self, member_id: str) -> bytes:
        """The member's data key, made now when they have none; ``MemberKeyErased`` once erased."""
        dek = await self.data_key(member_id)
        if dek is not None:
            return dek
        if member_id in self._erased:
            raise MemberKeyErased(member_id)
        dek = new_key()
        shard = shard_of(member_id)
        current = await self._current_kid(shard)
        try:
            await self.kv.create(entry_key(member_id), self._wrap(member_id, dek, current))
        except KeyWrongLastSequenceError:
            # Another process made it (or erased the member) first: theirs stands.
            found = await self._load(member_id)
            if found is None:
                raise MemberKeyErased(member_id) from None
            return found
        # A rotation that listed the entries before this one existed would leave it wrapped
        # under a KEK about to be destroyed: wrap it again under the current one.
        if await self._current_kid(shard) != current:
            await self._rewrap_one(member_id, known=dek)
        self._deks[member_id] = dek
        return dek

    async def erase(self, member_id: str) -> None:
        """Destroy the member's data key: a tombstone, then a new KEK for the rest of their shard."""
        await self.kv.put(entry_key(member_id), msgspec.json.encode(_Entry(erased=True)))
        self._deks.pop(member_id, None)
        self._erased.add(member_id)
        await self.rotate(shard_of(member_id))

    async def rotate(self, shard: int) -> None:
        """A new KEK for a shard: take over its entry, wrap its live data keys again, destroy the old KEK."""
        while True:
            entry = await self.kv.get(kek_entry(shard))
            old = msgspec.json.decode(entry.value or b"{}", type=_Current).kid
            kid = self._write_kek(new_key(), pending=True)
            try:
                taken = msgspec.json.encode(_Current(kid))
                await self.kv.update(kek_entry(shard), taken, last=entry.revision)
            except KeyWrongLastSequenceError:
                self.files.destroy(kid, pending=True)
                continue
            self.files.commit(kid)
            break
        gate = asyncio.Semaphore(REWRAP_IN_FLIGHT)

        async def rewrap(member_id: str) -> None:
            async with gate:
                await self._rewrap_one(member_id)

        await asyncio.gather(*(rewrap(member_id) for member_id in await self._members_of(shard)))
        self.files.destroy(old)
        self._keks.pop(old, None)

    async def _members_of(self, shard: int) -> list[str]:
        """The members whose data keys (or tombstones) are in a shard, read by the server's filter."""
        watcher: Any = await self.kv.watch(f"{MEMBER_PREFIX}{shard}.*", meta_only=True, ignore_deletes=True)
        found: list[str] = []
        try:
            async for update in watcher:
                if update is None:
                    break
                found.append(_member_of(update.key))
        finally:
            await watcher.stop()
        return found

    async def _rewrap_one(self, member_id: str, *, known: bytes | None = None) -> None:
        """Wrap a data key under its shard's KEK as the bucket names it now (never an older one,
        which a later rotation may already have destroyed)."""
        key = entry_key(member_id)
        for _ in range(20):
            try:
                found = await self.kv.get(key)
            except KeyNotFoundError:
                return
            entry = msgspec.json.decode(found.value or b"{}", type=_Entry)
            kid = await self._current_kid(shard_of(member_id))
            if entry.erased or entry.kid == kid:
                return
            dek = known or self._unwrap(member_id, entry)
            if dek is None:
                log.warning("the data key of %s is wrapped under a KEK already gone", member_id)
                return
            try:
                await self.kv.update(key, self._wrap(member_id, dek, kid), last=found.revision)
                return
            except KeyWrongLastSequenceError:
                continue

    async def _load(self, member_id: str) -> bytes | None:
        for attempt in range(50):
            try:
                found = await self.kv.get(entry_key(member_id))
            except KeyNotFoundError:
                return None
            entry = msgspec.json.decode(found.value or b"{}", type=_Entry)
            if entry.erased:
                self._erased.add(member_id)
                self._deks.pop(member_id, None)
                return None
            dek = self._unwrap(member_id, entry)
            if dek is not None:
                self._deks[member_id] = dek
                return dek
            # Wrapped under a KEK being replaced: the rotation re-wraps it in a moment.
            await asyncio.sleep(0.01 * (attempt + 1))
        raise KeyStoreRefused(f"the data key of member {member_id} cannot be unwrapped with any KEK held")

    def _wrap(self, member_id: str, dek: bytes, kid: str) -> bytes:
        kek = self._kek(kid)
        if kek is None:
            raise KeyStoreRefused(f"key-encryption key {kid} is not in {self.key_dir}")
        wrapped = encrypt(kek, dek, _wrap_context(member_id))
        return msgspec.json.encode(_Entry(kid=kid, key=base64.b64encode(wrapped).decode()))

    def _unwrap(self, member_id: str, entry: _Entry) -> bytes | None:
        kek = self._kek(entry.kid)
        if kek is None:
            return None
        try:
            return decrypt(kek, base64.b64decode(entry.key), _wrap_context(member_id))
        except CannotOpen:
            return None

    def _kek(self, kid: str) -> bytes | None:
        kek = self._keks.get(kid)
        if kek is None:
            kek = self.files.read(kid)
            if kek is not None:
                self._keks[kid] = kek
        return kek

    async def _current(self, shard: int) -> str | None:
        try:
            entry = await self.kv.get(kek_entry(shard))
        except KeyNotFoundError:
            return None
        return msgspec.json.decode(entry.value or b"{}", type=_Current).kid

    async def _current_kid(self, shard: int) -> str:
        kid = await self._current(shard)
        if kid is None:
            raise KeyStoreRefused(f"bucket {subjects.KEYS_BUCKET} names no KEK for shard {shard}")
        return kid

    def _write_kek(self, kek: bytes, *, pending: bool = False) -> str:
        kid = self.files.write(kek, pending=pending)
        self._keks[kid] = kek
        return kid

    async def _follow(self) -> None:
        """Forget, in this process, what another process erased or rotated away."""
        currents: dict[int, str] = {}
        while True:
            try:
                self._watcher = watcher = await self.kv.watchall()
                async for update in watcher:
                    if update is None or update.key is None:
                        continue
                    if update.key.startswith(KEK_PREFIX) and update.value:
                        shard = int(update.key[len(KEK_PREFIX) :])
                        kid = msgspec.json.decode(update.value, type=_Current).kid
                        old = currents.get(shard)
                        if old is not None and old != kid:
                            self._keks.pop(old, None)
                        currents[shard] = kid
                    elif update.key.startswith(MEMBER_PREFIX) and update.value:
                        entry = msgspec.json.decode(update.value, type=_Entry)
                        if entry.erased:
                            member_id = _member_of(update.key)
                            self._deks.pop(member_id, None)
                            self._erased.add(member_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("following the key bucket: %r; again in a second", exc)
                await asyncio.sleep(1.0)


def shard_of(member_id: str) -> int:
    """The shard of a member: which KEK wraps their data key."""
    return int.from_bytes(hashlib.blake2b(member_id.encode(), digest_size=4).digest(), "big") % SHARDS


def entry_key(member_id: str) -> str:
    """The bucket key of a member's data key: ``m.<shard>.<member_id>``."""
    return f"{MEMBER_PREFIX}{shard_of(member_id)}.{member_id}"


def _member_of(key: str) -> str:
    return key.split(".", 2)[2]


def kek_entry(shard: int) -> str:
    """The bucket key naming a shard's current KEK."""
    return f"{KEK_PREFIX}{shard}"


def _wrap_context(member_id: str) -> bytes:
    return f"inmail-dek:{member_id}".encode()
