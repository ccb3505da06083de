"""The Python client of InMail Broker: typed commands, queries and events over NATS.

Imports nothing of the service: only nats-py, msgspec, ``contracts`` and the
standard library, so a service that sends InMails does not install a broker.

    async with await InMailClient.connect(url, creds="client.creds") as client:
        sent = await client.send_inmail("alice", recipient_id="bob", subject="A role", body="Interested?")
        balance = await client.after(sent).credit_balance("alice")  # includes the send
"""

from inmail.client.client import DEFAULT_URL, InMailClient, SyncInMailClient
from inmail.client.core import Answered, Stats, Written
from inmail.client.errors import InMailError, NoAnswer
from inmail.client.events import Delivery, Events, UnreadableEvent
from inmail.client.results import *  # noqa: F403  (every result type, generated)
from inmail.client.sync import SyncDelivery, SyncEvents

__all__ = [
    "DEFAULT_URL",
    "Answered",
    "Delivery",
    "Events",
    "InMailClient",
    "InMailError",
    "NoAnswer",
    "Stats",
    "SyncDelivery",
    "SyncEvents",
    "SyncInMailClient",
    "UnreadableEvent",
    "Written",
]
