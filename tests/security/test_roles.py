"""Each row of contract section 7's table: what the role's credentials let it do, on a running service."""

from __future__ import annotations

import io
import subprocess
import sys
import uuid

import msgspec
from nats.js.api import ConsumerConfig, DeliverPolicy

from contracts import subjects
from inmail.ops.events import events
from inmail.ops.replay import replay
from inmail.ops.status import status
from tests.security.support import Installed, connect_as, register, snapshot, verified


async def test_the_service_role_runs_the_whole_service(installed: Installed) -> None:
    # inmail serve started with service.creds alone: commands write events and contacts,
    # projections follow the stream, queries answer.
    client = await connect_as(installed.url, installed.creds("client"))
    try:
        sender, recipient = f"s{uuid.uuid4().hex[:8]}", f"r{uuid.uuid4().hex[:8]}"
        for member in (sender, recipient):
            assert (await client.request(*register(member)))["ok"] is True
        sent = await client.request(
            subjects.command("SendInMail"),
            {"command_id": uuid.uuid4().hex, "sender_id": sender, "recipient_id": recipient,
             "subject": "A role", "body": "Interested?"},
        )  # fmt: skip
        assert sent["ok"] is True, sent
        inbox = await client.request(
            subjects.query("Inbox"), {"member_id": recipient, "box": "received", "min_seq": sent["seq"]}
        )
        assert [item["inmail_id"] for item in inbox["data"]["items"]] == [sent["data"]["inmail_id"]]
    finally:
        await client.nc.close()
    assert await verified(installed)


async def test_the_client_role_sends_commands_and_queries_and_nothing_else(installed: Installed) -> None:
    client = await connect_as(installed.url, installed.creds("client"))
    try:
        health = await client.request(subjects.query("Health"), {})
        assert health["ok"] is True
        js = client.nc.jetstream(timeout=0.5)
        await client.refused(js.stream_info(subjects.EVENTS_STREAM), "$JS.API.STREAM.INFO.INMAIL_EVENTS")
        # Nor may it listen in on others' commands or on the events.
        await client.refused(client.nc.subscribe("inmail.cmd.>"), "inmail.cmd.>", "subscription")
        await client.refused(client.nc.subscribe(subjects.EVENTS_ALL), subjects.EVENTS_ALL, "subscription")
    finally:
        await client.nc.close()


async def test_the_subscriber_role_reads_the_events_through_its_own_consumers(installed: Installed) -> None:
    member = f"sub{uuid.uuid4().hex[:8]}"
    client = await connect_as(installed.url, installed.creds("client"))
    await client.request(*register(member))
    await client.nc.close()
    subscriber = await connect_as(installed.url, installed.creds("subscriber"))
    try:
        js = subscriber.nc.jetstream()
        info = await js.stream_info(subjects.EVENTS_STREAM)
        assert info.state.last_seq >= 1
        # Ordered (a push consumer, found by subject), then a durable pull consumer with acks.
        ordered = await js.subscribe(subjects.member_events(member), ordered_consumer=True)
        first = await ordered.next_msg(timeout=5)
        assert msgspec.json.decode(first.data)["type"] == "MemberRegistered"
        await ordered.unsubscribe()
        durable = f"billing_{uuid.uuid4().hex[:6]}"
        pull = await js.pull_subscribe(
            subjects.member_events(member), durable=durable, stream=subjects.EVENTS_STREAM
        )
        [message] = await pull.fetch(1, timeout=5)
        await message.ack_sync()
        assert (await js.consumer_info(subjects.EVENTS_STREAM, durable)).num_ack_pending == 0
        await js.delete_consumer(subjects.EVENTS_STREAM, durable)
        assert subscriber.errors == []
    finally:
        await subscriber.nc.close()


async def test_the_operator_role_runs_status_replay_verify_and_events(installed: Installed) -> None:
    creds = installed.creds("operator")
    out = io.StringIO()
    assert await status(installed.url, out=out, creds=creds) == 0
    assert out.getvalue().startswith(f"stream {subjects.EVENTS_STREAM}:")
    assert await replay(installed.url, progress=False, out=io.StringIO(), creds=creds) == 0
    assert await verified(installed)
    lines = io.StringIO()
    assert await events(installed.url, out=lines, creds=creds) == 0
    assert '"MemberRegistered"' in lines.getvalue() and "@example.com" not in lines.getvalue()


def test_operator_commands_use_the_data_folders_operator_creds_by_default(installed: Installed) -> None:
    command = [sys.executable, "-m", "inmail.cli", "status", "--nats", installed.url]
    found = subprocess.run([*command, "--data-dir", str(installed.data_dir)], capture_output=True, text=True)
    assert found.returncode == 0 and "stream INMAIL_EVENTS" in found.stdout, found.stderr
    # Elsewhere there is nothing to default to: the server refuses, in one line.
    anonymous = subprocess.run([*command, "--data-dir", "/nonexistent"], capture_output=True, text=True)
    lines = anonymous.stderr.strip().splitlines()
    assert anonymous.returncode == 1 and len(lines) == 1 and "refused" in lines[0], lines


async def test_the_notifier_role_reads_the_notifications_stream_and_nothing_else(
    installed: Installed,
) -> None:
    admin = await connect_as(installed.url, installed.creds("admin"))
    notifier = await connect_as(installed.url, installed.creds("notifier"))
    try:
        # The service made the stream; an alert is put there the way it would be (by the admin).
        admin_js = admin.nc.jetstream()
        ack = await admin_js.publish(
            f"{subjects.NOTIFICATIONS_ROOT}.email.fz_bob", b'{"notification_id":"n-roles-test"}'
        )
        before = await snapshot(installed)
        js = notifier.nc.jetstream(timeout=0.5)
        pull = await js.pull_subscribe(
            f"{subjects.NOTIFICATIONS_ROOT}.email.fz_bob",
            durable="mailer",
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=ack.seq),
        )
        [message] = await pull.fetch(1, timeout=5)
        assert message.metadata.sequence.stream == ack.seq
        await message.ack_sync()
        await notifier.refused(js.stream_info(subjects.EVENTS_STREAM), "$JS.API.STREAM.INFO.INMAIL_EVENTS")
        await notifier.refused(
            js.add_consumer(subjects.MEMBERS_STREAM), f"$JS.API.CONSUMER.CREATE.{subjects.MEMBERS_STREAM}"
        )
        assert await snapshot(installed) == before
    finally:
        await admin.nc.close()
        await notifier.nc.close()
