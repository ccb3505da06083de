"""Fixtures of the read-side tests: a private nats-server, the events stream, read-model stores.

The events stream has the production name and subjects (``INMAIL_EVENTS`` on
``inmail.evt.>``) so the operator commands find it as they would in production;
streams with overlapping subjects cannot coexist, so these tests get a
nats-server of their own and each test deletes its stream afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from contracts import subjects
from eventstore import JetStreamEventStore, StreamSpec, connect
from inmail.natsserver import EmbeddedNatsServer
from tests.conftest import secured_server
from tests.integration.projections.support import SERVICE_CREDS

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="package")
def private_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNatsServer]:
    server = secured_server(tmp_path_factory.mktemp("nats-projections"), durable=False)
    server.start()
    # The query handlers of `support.running` answer as the service does, with its credentials.
    SERVICE_CREDS[0] = server.creds("service")
    yield server
    SERVICE_CREDS[0] = None
    server.stop()


@pytest.fixture
async def store(private_nats: EmbeddedNatsServer) -> AsyncIterator[JetStreamEventStore]:
    """The events stream, fresh for each test (as admin: tests write events and delete the stream)."""
    nc = await connect(private_nats.url, creds=private_nats.creds("admin"))
    events = JetStreamEventStore(
        nc, StreamSpec(name=subjects.EVENTS_STREAM, subjects=(subjects.EVENTS_ALL,), storage="memory")
    )
    await events.ensure_stream()
    await events.open()
    yield events
    await events.close()
    await events.js.delete_stream(subjects.EVENTS_STREAM)
    await nc.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'read.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A schema of the test's own in the shared database, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{POSTGRES}?schema={schema}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
