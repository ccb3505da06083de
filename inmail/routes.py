"""Every request subject the service answers: what it takes, its queue group, what it answers.

One table read by the query handlers (which subscribe from it), the AsyncAPI
document and the reference page, so the three cannot disagree. Commands are
served by one wildcard subscription (``inmail.command_subscription``), which also
takes the operator requests that write events; their rows
here say what each of its subjects takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from contracts import subjects
from contracts.admin import ALERT_OPERATIONS, READ_OPERATIONS, WRITE_OPERATIONS
from contracts.commands import COMMANDS
from contracts.queries import QUERIES
from contracts.replies import REPLY_DATA, CommandOk, QueryOk


def is_request(reply: str | None) -> bool:
    """Whether a message on a request subject is a request the service should answer.

    Only a request has a reply subject. A JetStream consumer's deliver subject may be any
    subject, so a subscriber could have the server deliver events onto ``inmail.cmd.*``:
    such deliveries carry a ``$JS.`` reply (their acknowledgement subject) and are no
    request either.
    """
    return reply is not None and reply != "" and not reply.startswith("$JS.")


@dataclass(frozen=True, slots=True)
class Route:
    """One request subject: core NATS request/reply."""

    request: type[msgspec.Struct]
    subject: str
    queue: str
    """Queue group: one of the service's processes answers each request ("" for every one)."""
    success: type[CommandOk] | type[QueryOk]
    """The success envelope; a refusal is always ``Failure``."""

    @property
    def name(self) -> str:
        """The request's name: its Struct's and its subject's last token."""
        return self.request.__name__

    @property
    def description(self) -> str:
        """The first line of the request's docstring."""
        first_line = (self.request.__doc__ or self.name).strip().splitlines()[0]
        return first_line.replace("``", "`")  # markdown, as AsyncAPI descriptions are

    @property
    def data(self) -> type[msgspec.Struct]:
        """What ``data`` holds in the success reply."""
        return REPLY_DATA[self.request]


COMMAND_ROUTES = tuple(
    Route(command, subjects.command(command.__name__), subjects.COMMAND_QUEUE, CommandOk)
    for command in COMMANDS
)
QUERY_ROUTES = tuple(
    Route(query, subjects.query(query.__name__), subjects.QUERY_QUEUE, QueryOk) for query in QUERIES
)
ADMIN_ROUTES = tuple(
    # No queue group: every process running projections rebuilds its own.
    Route(operation, subjects.admin(operation.__name__), "", QueryOk)
    for operation in READ_OPERATIONS
)
WRITE_ROUTES = tuple(
    # Operator requests that write events: one command process answers each, as for commands.
    Route(operation, subjects.admin(operation.__name__), subjects.COMMAND_QUEUE, CommandOk)
    for operation in WRITE_OPERATIONS
)
ALERT_ROUTES = tuple(
    # The mail service's: one read-side process answers each.
    Route(operation, subjects.alerts(operation.__name__), subjects.QUERY_QUEUE, QueryOk)
    for operation in ALERT_OPERATIONS
)
ROUTES = (*COMMAND_ROUTES, *QUERY_ROUTES, *ADMIN_ROUTES, *WRITE_ROUTES, *ALERT_ROUTES)
