"""The key folder: key-encryption keys in files, written once, destroyed for good.

A KEK never enters NATS (``vault.keystore`` says why). Each is one file ``kek-<id>``
(0600) in a folder of its own (0700); a rotation writes the new one as
``kek-<id>.pending`` and renames it once the bucket names it. Destroying a KEK
overwrites its file with random bytes, flushes it to disk, then deletes it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


class KekFolder:
    """The files of the key-encryption keys of one installation."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def prepare(self) -> None:
        """Make the folder (0700) when missing."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)

    def read(self, kid: str) -> bytes | None:
        """A KEK by its id; None when this folder does not hold it (any more)."""
        try:
            return self._path(kid).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, kek: bytes, *, pending: bool = False) -> str:
        """Keep a new KEK (fsynced, 0600); its id."""
        kid = secrets.token_hex(8)
        path = self._pending(kid) if pending else self._path(kid)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(kek)
            file.flush()
            os.fsync(file.fileno())
        return kid

    def commit(self, kid: str) -> None:
        """A pending KEK the bucket now names becomes a KEK like the others."""
        self._pending(kid).rename(self._path(kid))

    def destroy(self, kid: str, *, pending: bool = False) -> None:
        """Overwrite a KEK's file with random bytes, flush it to disk, then delete it."""
        path = self._pending(kid) if pending else self._path(kid)
        try:
            size = path.stat().st_size
            with path.open("r+b") as file:
                file.write(os.urandom(max(size, 32)))
                file.flush()
                os.fsync(file.fileno())
            path.unlink()
        except FileNotFoundError:
            return
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _path(self, kid: str) -> Path:
        return self.folder / f"kek-{kid}"

    def _pending(self, kid: str) -> Path:
        return self.folder / f"kek-{kid}.pending"
