"""Email alerts: what the service publishes on stream ``INMAIL_NOTIFICATIONS`` for a mail service.

One alert per InMail delivered to a recipient who wants them (``email_notifications``
on, not opted out of InMail), on ``inmail.notify.email.<recipient_id>``, with header
``Nats-Msg-Id`` = ``notification_id``. The only stream besides the members stream
that carries an email: the recipient's own, for the mail service to write to.

``email``, ``sender_name`` and ``subject`` are stored sealed (section 11: tokens
``enc1:…`` of the recipient's and the sender's keys); the mail service has the service
open them with ``inmail.alerts.OpenAlert`` (``contracts.admin.OpenAlert``), and gets
``"[erased]"`` once their member was erased.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import msgspec

from contracts.types import InMailId, MemberId


class EmailNotification(msgspec.Struct, frozen=True, kw_only=True):
    """An InMail arrived: tell the recipient by email."""

    notification_id: str
    """Derived from the InMail id: a retried publish is dropped as a duplicate."""
    inmail_id: InMailId
    recipient_id: MemberId
    email: str
    """Sealed with the recipient's key."""
    sender_name: str
    """Sealed with the sender's key."""
    subject: str
    """Sealed with the sender's key."""
    sent_at: datetime


def notification_id(inmail_id: str) -> str:
    """The one notification id of an InMail's alert (an id: at most 64 characters)."""
    derived = f"email-{inmail_id}"
    if len(derived) > 64:
        derived = f"email-{hashlib.sha256(inmail_id.encode()).hexdigest()[:40]}"
    return derived
