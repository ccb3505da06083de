"""On a 3-node cluster: every store of the product is R3, a replica count that differs is reported
and left alone, and an append whose acknowledgement was lost is resolved by its ``Nats-Msg-Id``."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError

from contracts import subjects
from eventstore import JetStreamEventStore, NewMessage, StreamSpec, connect
from eventstore.wire import decode_ack
from inmail.client import InMailClient
from inmail.devcluster import LoopbackCluster
from inmail.streams import STORES
from tests.serve_process import Serve

pytestmark = pytest.mark.cluster


async def test_every_store_is_created_with_the_replicas_asked_for_and_another_count_is_reported(
    cluster: LoopbackCluster, tmp_path: Path, processes: list[Serve]
) -> None:
    service = str(cluster.creds("service"))
    keys = str(tmp_path / "datakeys")  # one installation: one key folder
    flags = ("--nats", cluster.urls, "--creds", service, "--replicas", "3", "--key-dir", keys)
    commands = Serve(tmp_path / "commands", *flags, "--role", "commands")
    processes.append(commands)
    await asyncio.to_thread(commands.ready)
    for store in STORES:
        info = await cluster.stream_info(store.stream)
        assert info.config.num_replicas == 3, store
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2, (store, info.cluster)
    # The client library takes the same comma-separated seeds.
    async with await InMailClient.connect(cluster.urls, creds=cluster.creds("client")) as inmail:
        registered = await inmail.register_member(
            "seeded", display_name="Seeded", email="seeded@example.com", tier="free"
        )
    assert registered.member_id == "seeded" and registered.seq > 0
    commands.stop()

    # The same flags from the environment, asking for one replica, just after the events
    # stream's leader died, first among the seeds: serve waits out the election on the other
    # two, names each store in one line of its log, and changes none.
    leader = await cluster.leader_of(subjects.EVENTS_STREAM)
    cluster.kill(leader)
    seeds = ",".join(node.url for node in sorted(cluster.nodes, key=lambda node: node is not leader))
    env = {"INMAIL_NATS": seeds, "INMAIL_REPLICAS": "1", "INMAIL_NATS_CREDS": service, "INMAIL_KEY_DIR": keys}
    again = Serve(tmp_path / "again", "--role", "commands", env=env)
    processes.append(again)
    await asyncio.to_thread(again.ready)
    reported = [line for line in again.log().splitlines() if "where --replicas asks for 1" in line]
    for store in STORES:
        assert sum(store.name in line for line in reported) == 1, (store, reported)
        assert (await cluster.stream_info(store.stream)).config.num_replicas == 3


class AckLostOnce(JetStreamEventStore):
    """A store whose first append reaches the stream but whose acknowledgement never comes back,
    as when the connection drops between the two; it keeps the acknowledgements it did get."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.requests = 0
        self.acks: list[Msg] = []

    async def _request(self, subject: str, data: bytes, headers: dict[str, str]) -> Msg:
        reply = await super()._request(subject, data, headers)
        self.requests += 1
        if self.requests == 1:
            raise NatsTimeoutError
        self.acks.append(reply)
        return reply


async def test_an_append_whose_ack_was_lost_is_resolved_by_its_msg_id_on_r3(cluster: LoopbackCluster) -> None:
    nc = await connect(cluster.urls, creds=cluster.creds("admin"))
    name = f"ACKLOST_{uuid.uuid4().hex[:8].upper()}"
    store = AckLostOnce(nc, StreamSpec(name=name, subjects=(f"{name.lower()}.>",), replicas=3))
    try:
        await store.ensure_stream()
        await store.open()
        subject = f"{name.lower()}.member"
        first = await store.append(subject, [NewMessage(uuid.uuid4().hex, b"one")], 0)
        # Sent again with the same id and expected version, the R3 stream answers "duplicate" with
        # the sequence it stored the first copy at: nothing is guessed, nothing stored twice.
        [ack] = [decode_ack(reply.data) for reply in store.acks]
        assert ack.duplicate and ack.error is None
        assert first.seqs == (ack.seq,)
        stored = await store.read_subject(subject, after=0, limit=10)
        assert [m.seq for m in stored] == [ack.seq]
        second = await store.append(subject, [NewMessage(uuid.uuid4().hex, b"two")], ack.seq)
        assert second.seqs == (ack.seq + 1,)
    finally:
        await store.close()
        await store.js.delete_stream(name)
        await nc.close()

