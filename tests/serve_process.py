"""``inmail serve`` and the other CLI commands as real processes, as an operator runs them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

INMAIL = [sys.executable, "-m", "inmail.cli"]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one ``inmail`` command to its end."""
    return subprocess.run([*INMAIL, *args], capture_output=True, text=True, timeout=timeout)


class Serve:
    """One ``inmail serve`` process in a session of its own, its stderr in a log file."""

    def __init__(
        self, data_dir: Path, *args: str, log_name: str = "serve.log", env: dict[str, str] | None = None
    ) -> None:
        """``env``: variables set for this process on top of the test's (``INMAIL_*`` flags)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}-{log_name}"
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [*INMAIL, "serve", "--data-dir", str(data_dir), *args],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
                env=None if env is None else {**os.environ, **env},
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def ready(self) -> Serve:
        """Wait for the ready line; fail with the log when serve ends first."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert "InMail broker ready" in line, (line, self.log())
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)

    def kill(self, group: bool = False) -> None:
        """``kill -9`` serve, or its whole process group."""
        if self.process.poll() is None:
            if group:
                os.killpg(self.process.pid, signal.SIGKILL)
            else:
                self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM, as a supervisor stops it; kill -9 when it does not end."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def serving(data_dir: Path, *args: str, log_name: str = "serve.log") -> Iterator[Serve]:
    """A ready ``inmail serve``, stopped at the end whatever happened."""
    serve = Serve(data_dir, *args, log_name=log_name)
    try:
        yield serve.ready()
    finally:
        serve.stop()


def nats_server_pids(data_dir: Path) -> list[int]:
    """The nats-servers running on a data folder (its ``nats`` sub-folder)."""
    out = subprocess.run(["pgrep", "-f", str(data_dir / "nats")], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split() if alive(int(pid))]


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition()`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:g}s"
        time.sleep(0.05)
