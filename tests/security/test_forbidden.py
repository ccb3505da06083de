"""Every forbidden action, by every role that must not do it: refused by the server, nothing changed.

"Nothing changed" is every stream's last sequence and message count, and `inmail verify`
finding the read models in agreement with the events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from msgspec import json
from nats.js import JetStreamContext

from contracts import subjects
from tests.security.support import Installed, Session, connect_as, register, snapshot, verified

Action = Callable[[Session, JetStreamContext], Awaitable[object]]

NOT_WRITERS = ("client", "subscriber", "operator", "notifier")
EVERY_ROLE = ("service", *NOT_WRITERS)


@pytest.fixture
async def unchanged(installed: Installed) -> AsyncIterator[None]:
    """Some events to protect; afterwards, the streams are as they were and verify passes."""
    client = await connect_as(installed.url, installed.creds("client"))
    for member in ("guarded_a", "guarded_b"):
        await client.request(*register(member))
    await client.nc.close()
    before = await snapshot(installed)
    yield
    assert await snapshot(installed) == before
    assert await verified(installed)


async def attempt(
    installed: Installed, role: str, subject: str, action: Action, kind: str = "publish"
) -> None:
    session = await connect_as(installed.url, installed.creds(role))
    try:
        await session.refused(action(session, session.nc.jetstream(timeout=0.5)), subject, kind)
    finally:
        await session.nc.close()


async def test_publishing_an_event(installed: Installed, unchanged: None) -> None:
    subject = subjects.member_events("guarded_a")
    for role in NOT_WRITERS:
        await attempt(
            installed, role, subject, lambda s, _: s.nc.publish(subject, b'{"type":"CreditsRefreshed"}')
        )


async def test_purging_the_events(installed: Installed, unchanged: None) -> None:
    for role in EVERY_ROLE:
        await attempt(
            installed, role, f"$JS.API.STREAM.PURGE.{subjects.EVENTS_STREAM}",
            lambda _, js: js.purge_stream(subjects.EVENTS_STREAM),
        )  # fmt: skip


async def test_deleting_the_events(installed: Installed, unchanged: None) -> None:
    for role in EVERY_ROLE:
        await attempt(
            installed, role, f"$JS.API.STREAM.DELETE.{subjects.EVENTS_STREAM}",
            lambda _, js: js.delete_stream(subjects.EVENTS_STREAM),
        )  # fmt: skip


async def test_deleting_a_message_of_the_events(installed: Installed, unchanged: None) -> None:
    for role in EVERY_ROLE:
        await attempt(
            installed, role, f"$JS.API.STREAM.MSG.DELETE.{subjects.EVENTS_STREAM}",
            lambda s, _: s.nc.request(
                f"$JS.API.STREAM.MSG.DELETE.{subjects.EVENTS_STREAM}", b'{"seq":1}', timeout=0.5
            ),
        )  # fmt: skip


async def test_reading_the_members_stream(installed: Installed, unchanged: None) -> None:
    direct = f"$JS.API.DIRECT.GET.{subjects.MEMBERS_STREAM}"
    everything = f"{subjects.MEMBERS_ROOT}.>"
    for role in NOT_WRITERS:
        await attempt(installed, role, direct, lambda s, _: s.nc.request(direct, b'{"seq":1}', timeout=0.5))
        await attempt(
            installed, role, f"$JS.API.CONSUMER.CREATE.{subjects.MEMBERS_STREAM}",
            lambda _, js: js.add_consumer(subjects.MEMBERS_STREAM),
        )  # fmt: skip
        await attempt(installed, role, everything, lambda s, _: s.nc.subscribe(everything), "subscription")


async def test_reading_the_notifications_stream(installed: Installed, unchanged: None) -> None:
    for role in ("service", "client", "subscriber", "operator"):
        await attempt(
            installed, role, f"$JS.API.CONSUMER.CREATE.{subjects.NOTIFICATIONS_STREAM}",
            lambda _, js: js.add_consumer(subjects.NOTIFICATIONS_STREAM),
        )  # fmt: skip


async def test_sending_a_command_without_the_client_role(installed: Installed, unchanged: None) -> None:
    subject, body = register("intruder")
    for role in ("subscriber", "operator", "notifier"):
        await attempt(
            installed, role, subject, lambda s, _: s.nc.request(subject, json.encode(body), timeout=0.5)
        )


async def test_reading_the_schedulers_bucket(installed: Installed, unchanged: None) -> None:
    for role in NOT_WRITERS:
        await attempt(
            installed, role, "$JS.API.STREAM.INFO.KV_INMAIL_SCHEDULER",
            lambda _, js: js.stream_info("KV_INMAIL_SCHEDULER"),
        )  # fmt: skip


async def test_listing_the_consumers_of_the_events(installed: Installed, unchanged: None) -> None:
    # Without the list, other subscribers' ephemeral consumers (random names) cannot be found.
    await attempt(
        installed, "subscriber", f"$JS.API.CONSUMER.LIST.{subjects.EVENTS_STREAM}",
        lambda _, js: js.consumers_info(subjects.EVENTS_STREAM),
    )  # fmt: skip
