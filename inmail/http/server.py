"""Serving an ASGI application with uvicorn inside the service's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp


class HttpPortTaken(OSError):
    """The HTTP address cannot be bound; the message names it."""


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (0: any free port), or ``HttpPortTaken`` naming it.

    Bound before anything else starts, so that a taken port ends ``serve`` at once.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise HttpPortTaken(f"cannot serve HTTP on {host}:{port}: unknown host ({exc.strerror})") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise HttpPortTaken(
            f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc} "
            "(choose another port with --http-port, or 0 to turn HTTP off)"
        ) from exc
    return sock


class _InLoopServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # SIGTERM and SIGINT belong to ``inmail serve``, which stops the HTTP server itself.
        yield


class HttpServer:
    """An ASGI app on a bound socket, started and stopped with the service."""

    def __init__(self, app: ASGIApp, sock: socket.socket, *, grace: int = 2) -> None:
        self.sock = sock
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,  # our logging, in our format
            access_log=False,
            timeout_graceful_shutdown=grace,
        )
        self._server = _InLoopServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port it listens on (useful when bound to port 0)."""
        return int(self.sock.getsockname()[1])

    async def start(self) -> None:
        """Serve from now on; returns once the socket accepts connections."""
        self._task = asyncio.create_task(self._server.serve(sockets=[self.sock]), name="http")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the HTTP server ended while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Finish the requests in flight (a grace period), then close."""
        task, self._task = self._task, None
        if task is not None:
            self._server.should_exit = True
            await task
        self.sock.close()
