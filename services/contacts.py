"""Members' contact details, kept in the service's own members stream.

Emails never enter the events stream: subscribers of ``inmail.evt.>`` and every
query answer are free of them by construction. A contact record is written
before the registration event, keyed by the registering command: if two
registrations of one member id race, the one whose MemberRegistered event won
names its record through ``command_id``; the loser's record is never read.
"""

from __future__ import annotations

from typing import Protocol

import msgspec
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError, OutboundBufferLimitError
from nats.errors import TimeoutError as NatsTimeoutError

from contracts import subjects
from contracts.commands import RegisterMember
from eventstore import JetStreamEventStore, StoreUnavailable, StreamSpec


class Contact(msgspec.Struct, frozen=True):
    """A member's email, as given at registration by one command."""

    member_id: str
    email: str
    command_id: str


class Contacts(Protocol):
    """Where the command side keeps members' emails."""

    async def record(self, command: RegisterMember) -> None:
        """Keep the email of a registration about to be decided; idempotent per command."""

    async def email_of(self, member_id: str, registered_by: str) -> str | None:
        """The email given by the registration command that created the member."""


class SealText(Protocol):
    """Seals one personal field with a member's key (``vault.Sealer``)."""

    async def seal_text(self, member_id: str, field: str, text: str) -> str:
        """The field's token."""
        ...


class ContactBook:
    """Contact records in the members stream; the email sealed with the member's key when given a sealer."""

    def __init__(
        self, nc: NATS, spec: StreamSpec, *, timeout: float = 5.0, seal: SealText | None = None
    ) -> None:
        self.store = JetStreamEventStore(nc, spec, timeout=timeout)
        self.timeout = timeout
        self.seal = seal

    async def ensure_stream(self) -> None:
        await self.store.ensure_stream()

    async def record(self, command: RegisterMember) -> None:
        """Store the email of a registration about to be decided; idempotent per command."""
        email = command.email
        if self.seal is not None:
            email = await self.seal.seal_text(command.member_id, "email", email)
        contact = Contact(command.member_id, email, command.command_id)
        try:
            ack = await self.store.js.publish(
                subjects.member_contact(command.member_id),
                msgspec.json.encode(contact),
                timeout=self.timeout,
                headers={"Nats-Msg-Id": f"contact-{command.command_id}"},
            )
        except (NatsTimeoutError, NoRespondersError, OutboundBufferLimitError) as exc:
            raise StoreUnavailable(f"members stream unreachable: {type(exc).__name__}") from exc
        del ack

    async def email_of(self, member_id: str, registered_by: str) -> str | None:
        """The email given by the registration command that created the member."""
        records = await self.store.read_subject(subjects.member_contact(member_id))
        for message in reversed(records):
            contact = msgspec.json.decode(message.data, type=Contact)
            if contact.command_id == registered_by:
                return contact.email
        return None
