"""``inmail backup FILE`` and ``inmail restore FILE``: every stream and bucket of the product in one file.

The file is a tar: ``inmail-backup.json`` (what it holds), then for each stream its
configuration and state (``<stream>.json``) and its JetStream snapshot
(``<stream>.tar.s2``, ``inmail.ops.snapshots``). Streams are taken in ``STORES``
order, the events stream first: a member's contact record is written before the
event that registers them, so every member of the events snapshot has its record in
the members snapshot taken after it. A backup is written under a temporary name and
renamed at the end: a backup that fails leaves no file. A restore first checks that
the server has none of the backup's streams (else it changes nothing), then restores
them in order; if one fails, it deletes again the ones it created.

What a backup holds of personal data (contract section 11): only ciphertext. Names,
emails and texts are sealed with per-member data keys, which are in it (bucket
``INMAIL_KEYS``) only wrapped by the key-encryption key of the installation's key
folder (``inmail serve --key-dir``), which no backup holds. A restore is read with that
folder; once a member is erased, that key is replaced and the old one destroyed, so no
backup, older ones included, opens the erased member's data any more.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal, TextIO

import msgspec
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError
from tqdm import tqdm

from contracts import subjects
from inmail.datadir import DataDirInUse, DataDirLock
from inmail.natsserver import EmbeddedNatsServer, NatsServerError, NatsServerSettings
from inmail.ops.client import OperatorError, connected, server_of
from inmail.ops.snapshots import (
    Progress,
    SnapshotFailed,
    SnapshotHeader,
    StreamState,
    restore_stream,
    snapshot,
)
from inmail.security.installation import issue, secure
from inmail.streams import STORES, Store

MANIFEST = "inmail-backup.json"
FORMAT = 1


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One stream or bucket in a backup."""

    name: str
    kind: Literal["stream", "bucket"]
    stream: str
    messages: int
    first_seq: int
    last_seq: int
    size: int
    """Bytes of its snapshot in the file."""


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What a backup file holds, in the order it is restored."""

    format: int
    created: datetime
    stores: list[Entry]


async def backup(
    nats_url: str, file: Path, progress: bool = True, *, out: TextIO | None = None, creds: Path | None = None
) -> int:
    """Snapshot every stream and bucket of the product on the server into ``file``."""
    out = out or sys.stdout
    _check_target(file)
    async with connected(nats_url, creds) as nc:
        present = [store for store in STORES if await _exists(nc, store.stream)]
        if not present or present[0].name != subjects.EVENTS_STREAM:
            raise OperatorError(
                f"stream {subjects.EVENTS_STREAM} does not exist on the NATS server at {server_of(nc)}: "
                "nothing to back up, "
                "no file written"
            )
        with tempfile.TemporaryDirectory(prefix=f".{file.name}.", dir=file.parent) as work:
            entries = [await _snapshot(nc, store, Path(work), progress) for store in present]
            size = _assemble(Path(work), entries, file)
    missing = [store.name for store in STORES if store not in present]
    out.write(
        f"backed up {_listing(entries)} into {file} ({size} bytes)"
        + (f"; not on the server, so not in it: {', '.join(missing)}" if missing else "")
        + "\n"
        + "personal fields in it are sealed; the key folder (inmail serve --key-dir) that opens them is "
        "not in it: keep it apart, and a restore reads with it\n"
    )
    return 0


def _check_target(file: Path) -> None:
    if file.exists():
        raise OperatorError(f"{file} exists: a backup never overwrites a file, choose another name")
    if not file.parent.is_dir():
        raise OperatorError(f"{file.parent} is not a folder")


def _assemble(work: Path, entries: list[Entry], file: Path) -> int:
    """Put the manifest and the snapshots in one tar, on disk, then give it its name; its size."""
    manifest = Manifest(format=FORMAT, created=datetime.now(UTC), stores=entries)
    partial = work / "backup.tar"
    with tarfile.open(partial, "w") as tar:
        _add(tar, MANIFEST, msgspec.json.encode(manifest))
        for entry in entries:
            for member in (f"{entry.stream}.json", f"{entry.stream}.tar.s2"):
                tar.add(work / member, arcname=member)
    with partial.open("rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, file)
    return file.stat().st_size


async def restore(
    nats_url: str, file: Path, progress: bool = True, *, out: TextIO | None = None, creds: Path | None = None
) -> int:
    """Restore every stream and bucket of a backup into a server that has none of them."""
    out = out or sys.stdout
    with _open_backup(file) as tar:
        manifest = _manifest(tar, file)
        async with connected(nats_url, creds) as nc:
            existing = [entry.stream for entry in manifest.stores if await _exists(nc, entry.stream)]
            if existing:
                raise OperatorError(
                    f"this server already has {', '.join(existing)}: restore only into a server that has "
                    "none of the backup's streams; nothing was changed"
                )
            total = sum(entry.size for entry in manifest.stores)
            created: list[str] = []
            with tqdm(
                total=total, unit="B", unit_scale=True, desc="restore", disable=not progress, file=sys.stderr
            ) as bar:
                try:
                    for entry in manifest.stores:
                        created.append(entry.stream)
                        await _restore(nc, tar, entry, bar.update)
                except (SnapshotFailed, NatsError) as exc:
                    await _undo(nc, created)
                    raise OperatorError(
                        f"{exc}; deleted again what this restore created ({', '.join(created)})"
                    ) from exc
    out.write(f"restored {_listing(manifest.stores)} from {file}\n")
    return 0


async def restore_into(
    data_dir: Path, file: Path, progress: bool = True, *, out: TextIO | None = None
) -> int:
    """Restore a backup into a data folder's embedded server, started (on a port of its own) for that,
    secured with the folder's keys as ``inmail serve`` starts it (made on first use)."""
    try:
        lock = DataDirLock(data_dir).acquire()
    except DataDirInUse as exc:
        raise OperatorError(str(exc)) from exc
    security = secure(data_dir)
    # Restoring creates streams: an admin user of the folder's own account, made for it.
    admin = security.creds("restore")
    if not admin.exists():
        issue(security, "admin", "restore")
    settings = NatsServerSettings(data_dir=data_dir / "nats", port=0, security=security)
    server = EmbeddedNatsServer(settings, pass_fds=[lock.fd])
    try:
        url = server.start()
        return await restore(url, file, progress, out=out, creds=admin)
    except NatsServerError as exc:
        raise OperatorError(str(exc)) from exc
    finally:
        server.stop()
        lock.release()


def _open_backup(file: Path) -> tarfile.TarFile:
    try:
        # "r:": a backup is a plain tar (its snapshots are compressed already).
        return tarfile.open(file, "r:")
    except (OSError, tarfile.TarError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise OperatorError(f"{file} cannot be read as a backup: {reason}") from exc


async def _snapshot(nc: NATS, store: Store, work: Path, progress: bool) -> Entry:
    data = work / f"{store.stream}.tar.s2"
    with (
        data.open("wb") as sink,
        tqdm(unit="B", unit_scale=True, desc=store.name, disable=not progress, file=sys.stderr) as bar,
    ):
        try:
            header = await snapshot(nc, store.stream, sink, bar.update)
        except SnapshotFailed as exc:
            raise OperatorError(f"{exc}; no file written") from exc
    (work / f"{store.stream}.json").write_bytes(msgspec.json.encode(header))
    state = msgspec.json.decode(header.state, type=StreamState)
    return Entry(
        name=store.name,
        kind=store.kind,
        stream=store.stream,
        messages=state.messages,
        first_seq=state.first_seq,
        last_seq=state.last_seq,
        size=data.stat().st_size,
    )


async def _restore(nc: NATS, tar: tarfile.TarFile, entry: Entry, progress: Progress) -> None:
    header = msgspec.json.decode(_read(tar, f"{entry.stream}.json").read(), type=SnapshotHeader)
    source = _read(tar, f"{entry.stream}.tar.s2")
    state = await restore_stream(nc, entry.stream, header, source, progress)
    # An empty stream's first sequence is 0 or the next one to come, as it happens: not compared.
    first = (state.first_seq, entry.first_seq) if entry.messages else (0, 0)
    if (state.messages, state.last_seq, first[0]) != (entry.messages, entry.last_seq, first[1]):
        raise SnapshotFailed(
            f"{entry.stream} came back with {state.messages} messages, "
            f"seq {state.first_seq}..{state.last_seq}; the backup holds {entry.messages}, "
            f"seq {entry.first_seq}..{entry.last_seq}"
        )


async def _undo(nc: NATS, streams: list[str]) -> None:
    js = nc.jetstream(timeout=10)
    for stream in streams:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream)


async def _exists(nc: NATS, stream: str) -> bool:
    try:
        await nc.jetstream(timeout=5).stream_info(stream)
    except NotFoundError:
        return False
    except (NatsError, TimeoutError) as exc:
        raise OperatorError(
            f"JetStream does not answer on the NATS server at {server_of(nc)} ({type(exc).__name__})"
        ) from exc
    return True


def _manifest(tar: tarfile.TarFile, file: Path) -> Manifest:
    try:
        manifest = msgspec.json.decode(_read(tar, MANIFEST).read(), type=Manifest)
    except (KeyError, msgspec.DecodeError) as exc:
        raise OperatorError(f"{file} is not an inmail backup: {exc}") from exc
    if manifest.format != FORMAT:
        raise OperatorError(f"{file} is a backup of format {manifest.format}; this version reads {FORMAT}")
    return manifest


def _read(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    member = tar.extractfile(name)
    if member is None:
        raise KeyError(f"{name} is not a file in the backup")
    return member


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(datetime.now(UTC).timestamp())
    tar.addfile(info, fileobj=io.BytesIO(data))


def _listing(entries: list[Entry]) -> str:
    return ", ".join(
        f"{e.kind} {e.name} ({e.messages} messages, seq {e.first_seq}..{e.last_seq})" for e in entries
    )
