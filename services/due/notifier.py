"""Email alerts on stream ``INMAIL_NOTIFICATIONS``: one per delivered InMail, whatever restarts or instances.

An alert is published by the process folding the log, after the delivery's event
is stored, never on the command's path: a crash between the append and the
publish loses nothing, because the next start folds the log again and publishes
every alert the watermark does not cover. The watermark (key ``notify.position``
of the scheduler's bucket) is the stream sequence up to which every alert was
acknowledged; it moves only once a page's alerts all were, and is saved at most
once a second (and when stopping), not once per page. What was published past
the saved watermark is found at start in the notifications stream's tail (each
alert names the event it tells of in a header) and not published again; an
alert published twice anyway (by another instance following the same log)
carries the same ``Nats-Msg-Id``, derived from the InMail, and the stream drops
it within its duplicate window (an hour). The tail matters where that window
does not help: a restart more than an hour later, a stream restored from a backup.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from contracts import subjects
from contracts.notifications import EmailNotification, notification_id
from eventstore import JetStreamEventStore
from services.contacts import Contacts
from services.due.index import Alert
from services.monthly_refresh import ensure_bucket

log = logging.getLogger("inmail.notifications")

WATERMARK_KEY = "notify.position"
EVENT_SEQ_HEADER = "Inmail-Event-Seq"
"""On each alert: the stream sequence (in ``INMAIL_EVENTS``) of the delivery it tells of."""


class Notifier:
    """Publishes the alerts of each page of the log past the watermark."""

    def __init__(
        self,
        stream: JetStreamEventStore,
        contacts: Contacts,
        *,
        concurrency: int = 64,
        save_every: float = 1.0,
    ) -> None:
        self.stream = stream
        self.contacts = contacts
        self.concurrency = concurrency
        self.save_every = save_every
        self.watermark = 0
        """Every alert of an event at or below this sequence was published."""
        self._saved = 0
        self._saved_at = 0.0
        self._kv: KeyValue | None = None
        self._past_watermark: set[str] = set()
        """InMails whose alerts the stream holds beyond the saved watermark, found at start."""
        self._emails: dict[str, str] = {}
        self._encoder = msgspec.json.Encoder()

    async def start(self) -> None:
        """Read the watermark (the stream and the bucket exist: the composition root made them)."""
        self._kv = await ensure_bucket(self.stream.js)
        try:
            entry = await self._kv.get(WATERMARK_KEY)
            self.watermark = self._saved = int(entry.value or b"0")
        except KeyNotFoundError:
            pass
        await self._read_tail()

    async def _read_tail(self) -> None:
        """The alerts published after the saved watermark, from the newest back.

        Pages are published one after the other, so once an alert of an event at or
        below the watermark shows up, every older one is too.
        """
        state = (await self.stream.stream_info()).state
        seq = state.last_seq
        while seq >= max(state.first_seq, 1):
            message = await self.stream.get(seq)
            seq -= 1
            if message is None:
                continue
            if int(message.headers.get(EVENT_SEQ_HEADER, "0")) <= self.watermark:
                return
            self._past_watermark.add(msgspec.json.decode(message.data, type=EmailNotification).inmail_id)

    async def publish(self, alerts: Sequence[Alert], through: int) -> None:
        """Publish the alerts past the watermark, then move it to ``through`` (the page's end)."""
        todo = [
            alert
            for alert in alerts
            if alert.seq > self.watermark and alert.inmail_id not in self._past_watermark
        ]
        if not todo:
            return
        gate = asyncio.Semaphore(self.concurrency)

        async def one(alert: Alert) -> None:
            async with gate:
                await self._publish(alert)

        await asyncio.gather(*(one(alert) for alert in todo))
        self.watermark = max(self.watermark, through)
        if time.monotonic() - self._saved_at >= self.save_every:
            await self.save()

    async def save(self) -> None:
        """Keep the watermark, so a restart publishes only what came after it."""
        if self._kv is None or self.watermark == self._saved:
            return
        await self._kv.put(WATERMARK_KEY, str(self.watermark).encode())
        self._saved, self._saved_at = self.watermark, time.monotonic()

    async def _publish(self, alert: Alert) -> None:
        email = await self._email_of(alert)
        if email is None:
            log.warning("no email of member %s: no alert for %s", alert.recipient_id, alert.inmail_id)
            return
        alert_id = notification_id(alert.inmail_id)
        body = EmailNotification(
            notification_id=alert_id,
            inmail_id=alert.inmail_id,
            recipient_id=alert.recipient_id,
            email=email,
            sender_name=alert.sender_name,
            subject=alert.subject,
            sent_at=alert.sent_at,
        )
        await self.stream.js.publish(
            subjects.email_notification(alert.recipient_id),
            self._encoder.encode(body),
            timeout=self.stream.timeout,
            stream=self.stream.spec.name,
            headers={"Nats-Msg-Id": alert_id, EVENT_SEQ_HEADER: str(alert.seq)},
        )

    async def _email_of(self, alert: Alert) -> str | None:
        email = self._emails.get(alert.recipient_id)
        if email is None:
            email = await self.contacts.email_of(alert.recipient_id, alert.registered_by)
            if email is not None:
                self._emails[alert.recipient_id] = email
        return email
