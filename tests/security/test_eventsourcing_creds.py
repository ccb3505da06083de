"""Contract section 6 on a server with authentication: ``NATS_CREDS`` names the credentials file."""

from __future__ import annotations

import uuid

import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import OperationalError

from inmail.natsserver import EmbeddedNatsServer


class Ledger(Application[uuid.UUID]):
    pass


def test_an_application_stores_its_events_with_the_credentials_it_is_given(
    nats_server: EmbeddedNatsServer,
) -> None:
    env = {
        "PERSISTENCE_MODULE": "services.eventstore",
        "NATS_URL": nats_server.url,
        "NATS_STREAM": f"ES_{uuid.uuid4().hex[:8]}",
    }
    app = Ledger(env={**env, "NATS_CREDS": str(nats_server.creds("admin"))})
    try:
        aggregate = Aggregate()
        app.save(aggregate)
        assert app.repository.get(aggregate.id).id == aggregate.id
    finally:
        app.close()

    # The application creates its stream as it starts: without credentials, that is refused.
    with pytest.raises(OperationalError, match="refused"):
        Ledger(env=env)
