"""One owner per data folder: ``inmail serve`` holds an exclusive lock on it while it runs.

Two services on one folder would run two nats-servers on one JetStream store (each
acknowledging writes the other overwrites) and two writers on one read-model file.
The lock is ``flock`` on a file in the folder: the kernel releases it when the last
descriptor of it closes, so a holder killed with -9 leaves nothing to clean up. The
descriptor is handed to the embedded nats-server too, so the folder stays locked
until the server that serve started is gone as well, not only serve.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

LOCK_FILE = "inmail.lock"

ORPHAN_GRACE = 10.0
"""How long to wait for a lock whose serve is gone: its nats-server is still stopping."""


class DataDirInUse(Exception):
    """Another process holds the data folder; the message is one line naming its pid."""


class DataDirLock:
    """An exclusive lock on a data folder, held from ``acquire`` until ``release`` (or death)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def fd(self) -> int:
        """The locked descriptor, for children that must keep the folder locked while they live."""
        if self._fd is None:
            raise RuntimeError(f"{self.path} is not locked")
        return self._fd

    def acquire(self, orphan_grace: float = ORPHAN_GRACE) -> DataDirLock:
        """Take the lock, or raise ``DataDirInUse`` naming the holder's pid.

        A holder that is gone while the lock is still held left its nats-server
        stopping (it dies with its parent, gracefully): that is waited for, up to
        ``orphan_grace`` seconds. A live holder is refused at once.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Not truncated on open: the holder's pid stays readable until the lock is ours.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + orphan_grace
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    raise
            holder = _holder(fd)
            if holder is not None and not _alive(holder) and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            os.close(fd)
            raise DataDirInUse(_in_use(self.data_dir, holder))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the folder go (children given the descriptor keep it locked until they end)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _holder(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; only its parent has not collected it yet.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _in_use(data_dir: Path, holder: int | None) -> str:
    if holder is None:
        return f"data folder {data_dir} is in use by another inmail serve"
    if _alive(holder):
        return f"data folder {data_dir} is in use by inmail serve (pid {holder})"
    return (
        f"data folder {data_dir} is still locked by the nats-server of inmail serve (pid {holder}), "
        "which is gone; that nats-server did not stop"
    )
