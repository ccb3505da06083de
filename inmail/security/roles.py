"""What each role may publish and subscribe to: contract section 7's table, as data.

Every JetStream subject a role needs is spelled out, stream by stream: granting
``$JS.API.>`` would let a role purge and delete streams. A new stream or bucket
is a line in ``Role`` definitions below, nothing else.

Consumer permissions are per stream and consumer name, never per creator: a role
that may create or delete consumers on a stream may do so with any name it knows.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts import subjects
from contracts.commands import COMMANDS
from inmail.streams import STORES

INBOX = "_INBOX.>"
"""Replies come to the clients' default inbox prefix; every role may subscribe to it."""

SCHEDULER_BUCKET = "INMAIL_SCHEDULER"
"""The monthly refresh's KV bucket (``services.monthly_refresh.BUCKET``)."""

IDENTITY_BUCKET = "INMAIL_IDENTITY"
"""The record of the events stream's identity (``inmail.stream_guard.BUCKET``)."""

KEYS_BUCKET = subjects.KEYS_BUCKET
"""The members' wrapped data keys (``vault.keystore``): the service's alone."""

REPLY_WINDOW = (1, 60.0)
"""allow_responses: one reply per request received, within a minute."""


@dataclass(frozen=True, slots=True)
class Role:
    """One kind of user: the subjects it may publish and subscribe to."""

    name: str
    does: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...] = (INBOX,)
    answers_requests: bool = False
    """May reply to the requests it receives (and only to those: no publish right on inboxes)."""


def api(*tokens: str) -> str:
    """A JetStream API subject, ``$JS.API.<tokens>``."""
    return ".".join(("$JS.API", *tokens))


def reads_stream_info(stream: str) -> tuple[str, ...]:
    """A stream's configuration and state (``js.stream_info``), nothing of its messages."""
    return (api("STREAM.INFO", stream),)


def creates_stream(stream: str) -> tuple[str, ...]:
    """Stream info and create (``ensure_stream``), never update, purge or delete."""
    return (api("STREAM.INFO", stream), api("STREAM.CREATE", stream))


def direct_gets(stream: str) -> tuple[str, ...]:
    """Reading stored messages by sequence or subject, no consumer needed."""
    return (api("DIRECT.GET", stream), api("DIRECT.GET", stream, ">"))


def consumes(stream: str) -> tuple[str, ...]:
    """Creating, reading from, acknowledging and deleting consumers on one stream.

    The create subjects: ``CONSUMER.CREATE.<stream>`` (an ephemeral or ordered
    consumer), ``CONSUMER.CREATE.<stream>.<name>[.<filter>]`` and the older
    ``CONSUMER.DURABLE.CREATE.<stream>.<name>``. Listing consumers is left out, so
    others' ephemeral consumers (random names) cannot be found to be deleted.
    """
    return (
        api("CONSUMER.CREATE", stream),
        api("CONSUMER.CREATE", stream, ">"),
        api("CONSUMER.DURABLE.CREATE", stream, ">"),
        api("CONSUMER.INFO", stream, ">"),
        api("CONSUMER.MSG.NEXT", stream, ">"),
        api("CONSUMER.DELETE", stream, ">"),
        f"$JS.ACK.{stream}.>",
        f"$JS.FC.{stream}.>",
    )


def _kv_stream(bucket: str) -> str:
    return f"KV_{bucket}"


_STARTUP_PROBES = (subjects.command(COMMANDS[0].__name__), subjects.query("Health"))
"""The service asks itself once on start (``InMailService._wait_until_answering``)."""

SERVICE = Role(
    "service",
    "the service itself: writes events and contacts, runs projections, answers requests",
    publish=(
        subjects.EVENTS_ALL,
        f"{subjects.MEMBERS_ROOT}.>",
        f"{subjects.NOTIFICATIONS_ROOT}.>",
        f"$KV.{SCHEDULER_BUCKET}.>",
        f"$KV.{IDENTITY_BUCKET}.>",
        f"$KV.{KEYS_BUCKET}.>",
        api("INFO"),
        *creates_stream(subjects.EVENTS_STREAM),
        *creates_stream(subjects.MEMBERS_STREAM),
        *creates_stream(subjects.NOTIFICATIONS_STREAM),
        *creates_stream(_kv_stream(SCHEDULER_BUCKET)),
        *creates_stream(_kv_stream(IDENTITY_BUCKET)),
        *creates_stream(_kv_stream(KEYS_BUCKET)),
        *direct_gets(subjects.EVENTS_STREAM),
        # Answered by the stream's leader alone: a refusal is confirmed against what it holds
        # (any replica answers a direct get, and one may lag what the leader acknowledged).
        api("STREAM.MSG.GET", subjects.EVENTS_STREAM),
        *direct_gets(subjects.MEMBERS_STREAM),
        # The alerts already published, read back at start so none goes out twice.
        *direct_gets(subjects.NOTIFICATIONS_STREAM),
        *direct_gets(_kv_stream(SCHEDULER_BUCKET)),
        api("STREAM.MSG.GET", _kv_stream(SCHEDULER_BUCKET)),
        *direct_gets(_kv_stream(IDENTITY_BUCKET)),
        api("STREAM.MSG.GET", _kv_stream(IDENTITY_BUCKET)),
        *direct_gets(_kv_stream(KEYS_BUCKET)),
        api("STREAM.MSG.GET", _kv_stream(KEYS_BUCKET)),
        # Listing the keys (a rotation) and following them (erasures by other processes).
        *consumes(_kv_stream(KEYS_BUCKET)),
        *consumes(subjects.EVENTS_STREAM),
        # The dashboard reads through the same queries as every client (a commands-only
        # process asks the read processes); the start-up probes are among these subjects.
        f"{subjects.QUERY_ROOT}.>",
        *_STARTUP_PROBES,
    ),
    subscribe=(
        f"{subjects.COMMAND_ROOT}.>",
        f"{subjects.QUERY_ROOT}.>",
        f"{subjects.ADMIN_ROOT}.>",
        f"{subjects.ALERTS_ROOT}.>",
        INBOX,
    ),
    answers_requests=True,
)

CLIENT = Role(
    "client",
    "other services: send commands and queries, receive the replies",
    publish=(f"{subjects.COMMAND_ROOT}.>", f"{subjects.QUERY_ROOT}.>"),
)

SUBSCRIBER = Role(
    "subscriber",
    f"services consuming events: their own consumers on {subjects.EVENTS_STREAM} and its stream info",
    # STREAM.NAMES answers names only: nats-py's js.subscribe looks the stream up by subject.
    publish=(
        *reads_stream_info(subjects.EVENTS_STREAM),
        api("STREAM.NAMES"),
        *consumes(subjects.EVENTS_STREAM),
    ),
)

OPERATOR = Role(
    "operator",
    "inmail status / replay / verify / events: queries, admin requests, reading the events",
    publish=(
        f"{subjects.QUERY_ROOT}.>",
        f"{subjects.ADMIN_ROOT}.>",
        *reads_stream_info(subjects.EVENTS_STREAM),
        *consumes(subjects.EVENTS_STREAM),
    ),
)

NOTIFIER = Role(
    "notifier",
    f"the mail service: its own consumers on {subjects.NOTIFICATIONS_STREAM}, opening its alerts",
    publish=(
        # The alerts' email, sender name and subject are sealed (section 11): the service opens them.
        f"{subjects.ALERTS_ROOT}.OpenAlert",
        *reads_stream_info(subjects.NOTIFICATIONS_STREAM),
        api("STREAM.NAMES"),
        *consumes(subjects.NOTIFICATIONS_STREAM),
    ),
)

def snapshots(stream: str) -> tuple[str, ...]:
    """Snapshotting one stream (``inmail backup``): its info, the snapshot request, the chunks' acks."""
    return (api("STREAM.INFO", stream), api("STREAM.SNAPSHOT", stream), f"$JS.SNAPSHOT.ACK.{stream}.>")


BACKUP = Role(
    "backup",
    "inmail backup: snapshots of every stream and bucket of the product, nothing else; the backup "
    "holds the members stream (emails), so keep this file as safe as service.creds",
    publish=tuple(subject for store in STORES for subject in snapshots(store.stream)),
)

ADMIN = Role(
    "admin",
    "everything in the account (maintenance with the nats CLI, tests, benchmarks); issued on request only",
    publish=(">",),
    subscribe=(">",),
)

ROLES: dict[str, Role] = {
    role.name: role for role in (SERVICE, CLIENT, SUBSCRIBER, OPERATOR, NOTIFIER, BACKUP, ADMIN)
}

DEFAULT_ROLES: tuple[str, ...] = ("service", "client", "subscriber", "operator", "notifier", "backup")
"""The credentials every data folder gets on first start, one file per role (``<role>.creds``)."""
