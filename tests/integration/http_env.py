"""The service's HTTP surface on a free port, in-process, and a client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from inmail.app import InMailService
from inmail.http.app import HttpSurface
from inmail.http.server import HttpServer, bind


@asynccontextmanager
async def http_surface(service: InMailService | None) -> AsyncIterator[tuple[HttpSurface, str]]:
    """The surface of ``service`` served on 127.0.0.1 at a free port, and its base URL."""
    surface = HttpSurface(service)
    server = HttpServer(surface.app, bind("127.0.0.1", 0))
    await server.start()
    surface.start()
    try:
        yield surface, f"http://127.0.0.1:{server.port}"
    finally:
        await surface.stop()
        await server.stop()


@asynccontextmanager
async def http_client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the surface at ``base_url``."""
    async with httpx.AsyncClient(base_url=base_url, timeout=15.0) as client:
        yield client
